// Package app is the consumer executable as a library: Main runs the
// consumer command line (flags, config.yaml, logs, sentinels) with the task
// kinds of a registry, so a program that registers its own kinds gets a
// complete consumer in one call:
//
//	func main() {
//		reg := demo.Builtins()
//		_ = reg.Register("upper", upperHandler)
//		app.Main(reg)
//	}
package app

import (
	"context"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/procq/procq/consumer"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/internal/cli"
	"github.com/procq/procq/internal/endpoint"
	"github.com/procq/procq/internal/wire"
	"github.com/procq/procq/link"
	"github.com/procq/procq/task"
)

// Main runs the consumer command line with the kinds in reg and exits the
// process with its exit code.
//
//	func main() {
//		reg := demo.Builtins()
//		task.MustRegister(reg, "resize", resize)
//		app.Main(reg, app.Initializer(openDatabase))
//	}
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
	f := root.Flags()
	f.String("name", "", "consumer name in output and logs (default C-<pid>)")
	f.String("queue", "", "queue name (queue.name)")
	f.Int("concurrency", 0, "tasks run at once (consumers.concurrency)")
	f.String("run", "", "the run this consumer serves; set by a producer that spawns it")
	f.Int("holds-fd", 0, "file descriptor to report held messages on; set by a producer that spawns it")
	_ = f.MarkHidden("holds-fd")
	root.AddCommand(newPipeCmd(), newGetCmd())
	return root
}

var workerFlags = map[string]string{
	"queue":       "queue.name",
	"concurrency": "consumers.concurrency",
}

func runWorker(cmd *cobra.Command, reg *task.Registry, o *options) error {
	cfg, err := cli.Load(cmd, workerFlags)
	if err != nil {
		return err
	}
	name, _ := cmd.Flags().GetString("name")
	if name == "" {
		name = fmt.Sprintf("C-%d", os.Getpid())
	}
	if err := task.ValidName(name); err != nil {
		return &cli.UsageError{Err: fmt.Errorf("--name: %w", err)}
	}
	logger, closeLog, err := cli.Logger("consumer", name, cfg.Log, os.Stderr)
	if err != nil {
		return err
	}
	defer closeLog.Close()

	ctx := cmd.Context()
	nc, js, err := wire.Connect(ctx, cfg, "consumer "+name, logger)
	if err != nil {
		return err
	}
	defer link.Close(nc)
	topo, err := wire.EnsureQueue(ctx, js, cfg, logger)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if !reg.Has(demo.KindMessage) {
		if err := reg.Register(demo.KindMessage, demo.MessageHandler(out, name, cfg.Consumers.WorkMin, cfg.Consumers.WorkMax)); err != nil {
			return err
		}
	}
	wcfg := wire.WorkerConfig(cfg, name, out)
	wcfg.Init = o.init
	wcfg.Run, _ = cmd.Flags().GetString("run")
	if fd, _ := cmd.Flags().GetInt("holds-fd"); fd > 0 {
		holds := os.NewFile(uintptr(fd), "holds")
		defer holds.Close()
		wcfg.Holds = holds
	}
	var gauges *consumer.GaugeSource
	if cfg.Metrics.Listen != "" {
		promReg := prometheus.NewRegistry()
		var m *consumer.WorkerMetrics
		m, gauges = consumer.NewWorkerMetrics(promReg, cfg.Queue.Name)
		wcfg.Events = m
		// The token this process reached the broker with.
		addr, err := endpoint.Serve(ctx, cfg.Metrics.Listen, endpoint.RequireToken(nc.Opts.Token, promhttp.HandlerFor(promReg, promhttp.HandlerOpts{})), "metrics", logger)
		if err != nil {
			return cfg.ErrorFor("metrics.listen", err)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "Consumer %s: metrics on http://%s/metrics\n", name, addr)
	}
	w, err := consumer.New(wcfg, js, topo, reg, logger)
	if err != nil {
		return err
	}
	if gauges != nil {
		gauges.Set(w)
	}
	if wcfg.Run == "" {
		return retired(w, w.Run(ctx))
	}
	// A spawned consumer lives as long as its producer: when the producer
	// dies it stops, hands back what it holds, and exits 1 (orphaned), so
	// a supervisor sees a failure.
	wctx, stop := watchParent(ctx, logger)
	err = w.Run(wctx)
	if orphan := stop(); orphan != nil {
		return orphan
	}
	return retired(w, err)
}

// retired turns a worker's retirement (consumers.max_tasks) into
// cli.ErrRetired, exit code 3, which tells a spawning producer to start a
// fresh consumer.
func retired(w *consumer.Worker, err error) error {
	if err == nil && w.Retired() {
		return fmt.Errorf("%w (%d)", cli.ErrRetired, w.MaxTasks())
	}
	return err
}
