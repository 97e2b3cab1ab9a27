package producer

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/procq/procq/protocol"
)

// SpawnConfig says how to start consumer processes.
type SpawnConfig struct {
	// Path of the consumer executable. Required.
	Path string
	// Args go before --name on every child's command line.
	Args []string
	// Env is added to the producer's environment for every child.
	Env []string
	// ChildEnv, when set, adds variables for the child named Names[i]
	// (its own metrics port, say); they win over Env.
	ChildEnv func(i int) []string
	// Names of the children, one process each: C-1, C-2, ...
	Names []string
	// MaxRestarts is how many times a child that died (killed, or exited
	// non-zero other than with a usage error) is replaced. 0 disables.
	MaxRestarts int
	// Stdout and Stderr receive the children's output. Default to
	// os.Stdout and os.Stderr.
	Stdout, Stderr io.Writer
	// StopGrace is how long a child has to exit after SIGTERM before it is
	// killed. Defaults to 15s.
	StopGrace time.Duration
	// Run, when set, is passed to every child as --run: the run it serves.
	Run string
	// Handback, when set, gets the ack subjects of the messages a child
	// held when it died, which it reported on a pipe (--holds-fd 3), so
	// they can be handed back at once instead of after their lease.
	Handback func(ackSubjects []string)
}

// ChildError says which children failed.
type ChildError struct {
	Failed []string // "C-2 (exit status 1)"
}

func (e *ChildError) Error() string {
	return "consumer process failed: " + strings.Join(e.Failed, ", ")
}

// Group is a set of running consumer processes.
type Group struct {
	cfg  SpawnConfig
	log  *slog.Logger
	wg   sync.WaitGroup
	mu   sync.Mutex
	fail []string
	pids map[string]int

	live   int           // children running or being replaced
	dead   chan struct{} // closed when every child failed for good
	cancel context.CancelFunc
}

// Spawn starts one consumer process per name; each is replaced up to
// MaxRestarts times if it dies. When ctx ends the children get SIGTERM.
func Spawn(ctx context.Context, cfg SpawnConfig, logger *slog.Logger) (*Group, error) {
	cfg.Stdout = cmp.Or[io.Writer](cfg.Stdout, os.Stdout)
	cfg.Stderr = cmp.Or[io.Writer](cfg.Stderr, os.Stderr)
	cfg.StopGrace = cmp.Or(cfg.StopGrace, 15*time.Second)
	if _, err := os.Stat(cfg.Path); err != nil {
		return nil, fmt.Errorf("consumer executable: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	g := &Group{cfg: cfg, log: logger, pids: make(map[string]int), cancel: cancel,
		live: len(cfg.Names), dead: make(chan struct{})}
	for _, name := range cfg.Names {
		c, err := g.start(ctx, name)
		if err != nil {
			// Stop and join the children already started.
			cancel()
			g.wg.Wait()
			return nil, err
		}
		g.wg.Go(func() { g.supervise(ctx, name, c) })
	}
	return g, nil
}

// child is one started consumer process and what it reports it holds.
type child struct {
	cmd   *exec.Cmd
	holds *holdSet // nil without Handback
}

func (g *Group) start(ctx context.Context, name string) (*child, error) {
	args := append(append([]string{}, g.cfg.Args...), protocol.ArgName, name)
	if g.cfg.Run != "" {
		args = append(args, protocol.ArgRun, g.cfg.Run)
	}
	cmd := exec.CommandContext(ctx, g.cfg.Path, args...)
	cmd.Env = append(os.Environ(), g.cfg.Env...)
	if g.cfg.ChildEnv != nil {
		cmd.Env = append(cmd.Env, g.cfg.ChildEnv(slices.Index(g.cfg.Names, name))...)
	}
	cmd.Stdout, cmd.Stderr = g.cfg.Stdout, g.cfg.Stderr
	cmd.SysProcAttr = childAttr()
	cmd.Cancel = func() error { return cmd.Process.Signal(protocol.StopSignal) }
	cmd.WaitDelay = g.cfg.StopGrace
	c := &child{cmd: cmd}
	var pw *os.File
	if g.cfg.Handback != nil {
		pr, w, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("start consumer %s: %w", name, err)
		}
		pw = w
		cmd.ExtraFiles = []*os.File{pw} // fd 3 in the child
		cmd.Args = append(cmd.Args, protocol.ArgHoldsFD, strconv.Itoa(protocol.HoldsFD))
		c.holds = readHolds(pr)
	}
	err := cmd.Start()
	if pw != nil {
		_ = pw.Close() // the child has its copy; EOF comes when it exits
	}
	if err != nil {
		if c.holds != nil {
			c.holds.wait()
		}
		return nil, fmt.Errorf("start consumer %s: %w", name, err)
	}
	g.mu.Lock()
	g.pids[name] = cmd.Process.Pid
	g.mu.Unlock()
	g.log.Info("consumer process started", "consumer", name, "child_pid", cmd.Process.Pid, "run", g.cfg.Run)
	return c, nil
}

// supervise waits for a child, replacing it while it dies and restarts
// remain.
func (g *Group) supervise(ctx context.Context, name string, c *child) {
	for restarts := 0; ; restarts++ {
		err := c.cmd.Wait()
		pid := c.cmd.Process.Pid
		if c.holds != nil {
			if held := c.holds.wait(); len(held) > 0 {
				g.log.Warn("handing back what the consumer held", "consumer", name, "child_pid", pid, "messages", len(held))
				g.cfg.Handback(held)
			}
		}
		// Wait reports a cancelled context even when the child, told to
		// stop, exited 0: that is a clean stop.
		if err == nil || c.cmd.ProcessState != nil && c.cmd.ProcessState.Success() {
			g.log.Info("consumer process exited", "consumer", name, "child_pid", pid, "code", 0)
			g.exited(false)
			return
		}
		code := c.cmd.ProcessState.ExitCode()
		if (code == protocol.ExitRetired || code == protocol.ExitTimeLimit) && ctx.Err() != nil {
			g.log.Info("consumer process retired (consumers.max_tasks or a time limit)", "consumer", name, "child_pid", pid, "code", code)
			g.exited(false)
			return
		}
		switch code {
		case protocol.ExitRetired:
			g.log.Info("consumer process retired after consumers.max_tasks; starting a fresh one", "consumer", name, "child_pid", pid)
			restarts-- // a retirement is no restart
		case protocol.ExitTimeLimit:
			g.log.Warn("consumer process stopped a task at its hard time limit; starting a fresh one", "consumer", name, "child_pid", pid)
			fmt.Fprintf(g.cfg.Stdout, "Producer: consumer %s (pid %d) exited to stop a task past its time limit; starting a replacement\n", name, pid)
			restarts-- // the task was at fault, not the process
		default:
			g.log.Warn("consumer process failed", "consumer", name, "child_pid", pid, "code", code, "error", err)
			if ctx.Err() != nil || code == protocol.ExitUsage || restarts >= g.cfg.MaxRestarts {
				g.failed(fmt.Sprintf("%s (pid %d: %v)", name, pid, err))
				g.exited(true)
				return
			}
			fmt.Fprintf(g.cfg.Stdout, "Producer: consumer %s (pid %d) died (%v); starting a replacement\n", name, pid, err)
		}
		next, serr := g.start(ctx, name)
		if serr != nil {
			g.failed(fmt.Sprintf("%s (%v)", name, serr))
			g.exited(true)
			return
		}
		c = next
	}
}

// exited counts a child gone for good; when the last one failed, Dead is
// closed.
func (g *Group) exited(failed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.live--
	if g.live == 0 && len(g.fail) > 0 && failed {
		close(g.dead)
	}
}

// Live is how many children are running (or being replaced).
func (g *Group) Live() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.live
}

// Dead is closed when every child is gone and the last one failed: nobody
// is left to do the work.
func (g *Group) Dead() <-chan struct{} { return g.dead }

func (g *Group) failed(s string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fail = append(g.fail, s)
}

// PIDs returns the current pid of each child by name.
func (g *Group) PIDs() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := make(map[string]int, len(g.pids))
	for k, v := range g.pids {
		m[k] = v
	}
	return m
}

// Wait joins every child. It returns a *ChildError naming the children that
// failed for good.
func (g *Group) Wait() error {
	g.wg.Wait()
	g.cancel()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.fail) > 0 {
		return &ChildError{Failed: append([]string(nil), g.fail...)}
	}
	return nil
}
