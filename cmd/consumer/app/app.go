// Package app is the consumer executable as a library: Main runs the
// consumer command line (flags, config.yaml, logs, sentinels, the
// child-process protocol) with the task kinds of a registry, so a program
// that registers its own kinds gets a complete consumer in one call. It
// is built on procq's front door (Client.Worker).
//
//	func main() {
//		reg := demo.Builtins()
//		task.MustRegister(reg, "resize", resize)
//		app.Main(reg, app.Initializer(openDatabase))
//	}
package app

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/procq/procq"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/internal/cli"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// Main runs the consumer command line with the kinds in reg and exits the
// process with its exit code.
func Main(reg *task.Registry, opts ...Option) {
	cli.TuneGC()
	os.Exit(cli.Execute(New(reg, opts...), os.Stderr))
}

// Option customises the consumer command.
type Option func(*options)

type options struct {
	init func(context.Context) error
}

// Initializer runs fn once in the consumer process before its first task,
// like the initializer of Python's Pool: to open a database, say. When fn
// fails, the process exits 1 with fn's error and takes no task.
func Initializer(fn func(ctx context.Context) error) Option {
	return func(o *options) { o.init = fn }
}

// New returns the consumer command with the kinds in reg (plus the Queue
// demo's message kind).
func New(reg *task.Registry, opts ...Option) *cobra.Command {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	root := &cobra.Command{
		Use:   "consumer",
		Short: "Take tasks from a procq queue until this consumer's sentinel arrives",
		Long: `consumer pulls tasks from the queue's shared durable consumer, so each
task goes to exactly one consumer process, runs them, and exits 0 once it takes
its sentinel (or on SIGINT/SIGTERM, after finishing the task in hand).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := runWorker(cmd, reg, &o); !cli.Stopped(cmd.Context(), err) {
				return err
			}
			return nil
		},
	}
	cli.AddConfigFlag(root)
	cli.AddVersion(root)
	f := root.Flags()
	f.String(flagName(protocol.ArgName), "", "consumer name in output and logs (default C-<pid>)")
	f.String("queue", "", "queue name (queue.name)")
	f.Int("concurrency", 0, "tasks run at once (consumers.concurrency)")
	f.Duration("task-timeout", 0, "time limit of a task that names none (consumers.task_timeout; 0: none)")
	f.String(flagName(protocol.ArgRun), "", "the run this consumer serves; set by a producer that spawns it")
	f.Int(flagName(protocol.ArgHoldsFD), 0, "file descriptor to report held messages on; set by a producer that spawns it")
	_ = f.MarkHidden(flagName(protocol.ArgHoldsFD))
	root.AddCommand(newPipeCmd(), newGetCmd())
	return root
}

// flagName is a protocol argument's flag name: "--run" is "run".
func flagName(arg string) string { return arg[2:] }

var workerFlags = map[string]string{
	"queue":        "queue.name",
	"concurrency":  "consumers.concurrency",
	"task-timeout": "consumers.task_timeout",
}

func runWorker(cmd *cobra.Command, reg *task.Registry, o *options) error {
	cfg, err := cli.Load(cmd, workerFlags)
	if err != nil {
		return err
	}
	f := cmd.Flags()
	name, _ := f.GetString(flagName(protocol.ArgName))
	if name == "" {
		name = fmt.Sprintf("C-%d", os.Getpid())
	}
	if err := task.ValidName(name); err != nil {
		return &cli.UsageError{Err: fmt.Errorf("%s: %w", protocol.ArgName, err)}
	}
	ctx := cmd.Context()
	c, logger, done, err := cli.Connect(ctx, cfg, "consumer", name, os.Stderr,
		procq.WithRole(protocol.RoleConsumer), procq.WithName("consumer "+name))
	if err != nil {
		return err
	}
	defer done()
	out := cmd.OutOrStdout()
	if !reg.Has(demo.KindMessage) {
		if err := reg.Register(demo.KindMessage, demo.MessageHandler(out, name, cfg.Consumers.WorkMin, cfg.Consumers.WorkMax)); err != nil {
			return err
		}
	}
	wopts := []procq.WorkerOption{procq.WorkerName(name), procq.Output(out, cmd.ErrOrStderr())}
	if o.init != nil {
		wopts = append(wopts, procq.Initializer(o.init))
	}
	run, _ := f.GetString(flagName(protocol.ArgRun))
	if run != "" {
		var holds *os.File
		if fd, _ := f.GetInt(flagName(protocol.ArgHoldsFD)); fd > 0 {
			holds = os.NewFile(uintptr(fd), "holds")
			defer holds.Close()
		}
		wopts = append(wopts, procq.ServeRun(run, writerOrNil(holds)))
	}
	w, err := c.Worker(reg, wopts...)
	if err != nil {
		return &cli.UsageError{Err: err}
	}
	if run == "" {
		return w.Run(ctx)
	}
	// A spawned consumer lives as long as its producer: when the producer
	// dies it stops, hands back what it holds, and exits 1 (orphaned), so
	// a supervisor sees a failure.
	wctx, stop := watchParent(ctx, logger)
	err = w.Run(wctx)
	if orphan := stop(); orphan != nil {
		return orphan
	}
	return err
}

// writerOrNil keeps a nil file a nil writer.
func writerOrNil(f *os.File) io.Writer {
	if f == nil {
		return nil
	}
	return f
}
