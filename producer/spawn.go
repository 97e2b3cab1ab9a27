package producer

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// SpawnConfig says how to start consumer processes.
type SpawnConfig struct {
	// Path of the consumer executable. Required.
	Path string
	// Args go before --name on every child's command line.
	Args []string
	// Env is added to the producer's environment for every child.
	Env []string
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
}

// ChildError says which children failed.
type ChildError struct {
	Failed []string // "C-2 (exit status 1)"
}

func (e *ChildError) Error() string {
	return "consumer process failed: " + strings.Join(e.Failed, ", ")
}

// exitUsage is the exit code of a bad configuration; restarting cannot help.
const exitUsage = 2

// Group is a set of running consumer processes.
type Group struct {
	cfg  SpawnConfig
	log  *slog.Logger
	wg   sync.WaitGroup
	mu   sync.Mutex
	fail []string
	pids map[string]int

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
	g := &Group{cfg: cfg, log: logger, pids: make(map[string]int), cancel: cancel}
	for _, name := range cfg.Names {
		cmd, err := g.start(ctx, name)
		if err != nil {
			// Stop and join the children already started.
			cancel()
			g.wg.Wait()
			return nil, err
		}
		g.wg.Go(func() { g.supervise(ctx, name, cmd) })
	}
	return g, nil
}

func (g *Group) start(ctx context.Context, name string) (*exec.Cmd, error) {
	args := append(append([]string{}, g.cfg.Args...), "--name", name)
	cmd := exec.CommandContext(ctx, g.cfg.Path, args...)
	cmd.Env = append(os.Environ(), g.cfg.Env...)
	cmd.Stdout, cmd.Stderr = g.cfg.Stdout, g.cfg.Stderr
	cmd.SysProcAttr = childAttr()
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = g.cfg.StopGrace
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start consumer %s: %w", name, err)
	}
	g.mu.Lock()
	g.pids[name] = cmd.Process.Pid
	g.mu.Unlock()
	g.log.Info("consumer process started", "consumer", name, "child_pid", cmd.Process.Pid)
	return cmd, nil
}

// supervise waits for a child, replacing it while it dies and restarts
// remain.
func (g *Group) supervise(ctx context.Context, name string, cmd *exec.Cmd) {
	for restarts := 0; ; restarts++ {
		err := cmd.Wait()
		pid := cmd.Process.Pid
		// Wait reports a cancelled context even when the child, told to
		// stop, exited 0: that is a clean stop.
		if err == nil || cmd.ProcessState != nil && cmd.ProcessState.Success() {
			g.log.Info("consumer process exited", "consumer", name, "child_pid", pid, "code", 0)
			return
		}
		code := cmd.ProcessState.ExitCode()
		g.log.Warn("consumer process failed", "consumer", name, "child_pid", pid, "code", code, "error", err)
		if ctx.Err() != nil || code == exitUsage || restarts >= g.cfg.MaxRestarts {
			g.failed(fmt.Sprintf("%s (pid %d: %v)", name, pid, err))
			return
		}
		fmt.Fprintf(g.cfg.Stdout, "Producer: consumer %s (pid %d) died (%v); starting a replacement\n", name, pid, err)
		next, serr := g.start(ctx, name)
		if serr != nil {
			g.failed(fmt.Sprintf("%s (%v)", name, serr))
			return
		}
		cmd = next
	}
}

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
