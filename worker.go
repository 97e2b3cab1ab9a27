package procq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/procq/procq/config"
	"github.com/procq/procq/consumer"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/ops/endpoint"
	"github.com/procq/procq/task"
)

// WorkerOption configures Client.Worker.
type WorkerOption func(*workerOptions)

type workerOptions struct {
	name     string
	run      string
	holds    io.Writer
	init     func(context.Context) error
	out, err io.Writer
	events   consumer.Events
}

// WorkerName names the worker in the broker's view, its logs and its
// presence key. Defaults to C-<pid>.
func WorkerName(name string) WorkerOption { return func(o *workerOptions) { o.name = name } }

// Initializer runs fn once in the worker before its first task, like the
// initializer of Python's Pool: to open a database, say. When fn fails,
// Run returns its error and takes no task.
func Initializer(fn func(ctx context.Context) error) WorkerOption {
	return func(o *workerOptions) { o.init = fn }
}

// Output sends the worker's demo lines (the Queue demo's, the Process
// demo's) to stdout and its notices (where its metrics are served) to
// stderr. Both default to io.Discard.
func Output(stdout, stderr io.Writer) WorkerOption {
	return func(o *workerOptions) { o.out, o.err = stdout, stderr }
}

// ServeRun binds the worker to one run of the queue, and reports what it
// holds on holds: what a producer that spawned the worker tells it
// (protocol's child-process table: --run, --holds-fd). Workers started
// otherwise leave both unset.
func ServeRun(run string, holds io.Writer) WorkerOption {
	return func(o *workerOptions) { o.run, o.holds = run, holds }
}

// Worker is a consumer of the client's queue running in this process,
// with the same configuration, presence and metrics as bin/consumer.
type Worker struct {
	c   *Client
	reg *task.Registry
	o   workerOptions
}

// Worker returns a worker that runs the kinds in reg; Run starts it. The
// kinds must be registered before Run.
func (c *Client) Worker(reg *task.Registry, opts ...WorkerOption) (*Worker, error) {
	o := workerOptions{name: fmt.Sprintf("C-%d", os.Getpid()), out: io.Discard, err: io.Discard}
	for _, opt := range opts {
		opt(&o)
	}
	if err := task.ValidName(o.name); err != nil {
		return nil, fmt.Errorf("worker name: %w", err)
	}
	return &Worker{c: c, reg: reg, o: o}, nil
}

// Run takes tasks until the worker takes its sentinel (a run's end) or ctx
// ends; then it finishes the tasks in hand and returns nil. With
// metrics.listen set it serves its Prometheus metrics there meanwhile,
// behind the token. Run returns ErrRetired after consumers.max_tasks
// tasks.
func (w *Worker) Run(ctx context.Context) error {
	c := w.c
	topo, _, err := c.topology(ctx)
	if err != nil {
		return err
	}
	wcfg := workerConfig(c.cfg, w.o)
	// The metrics endpoint lives as long as Run, not as the caller's ctx.
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	var gauges *consumer.GaugeSource
	if c.cfg.Metrics.Listen != "" {
		reg := prometheus.NewRegistry()
		var m *consumer.WorkerMetrics
		m, gauges = consumer.NewWorkerMetrics(reg, c.cfg.Queue.Name)
		wcfg.Events = m
		token := c.endpointToken()
		if token == "" {
			return c.cfg.ErrorFor("metrics.listen", errors.New("no token to protect the endpoint with: set broker.token, or make broker.token_file readable here"))
		}
		url, err := endpoint.Serve(sctx, c.cfg.Metrics.Listen,
			endpoint.RequireToken(token, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})), c.endpointTLS(), "metrics", c.log)
		if err != nil {
			return c.cfg.ErrorFor("metrics.listen", err)
		}
		fmt.Fprintf(w.o.err, "Consumer %s: metrics on %s/metrics\n", w.o.name, url)
	}
	cw, err := consumer.New(wcfg, c.js, topo, w.reg, c.log)
	if err != nil {
		return err
	}
	if gauges != nil {
		gauges.Set(cw)
	}
	return retired(cw, cw.Run(ctx))
}

// workerConfig configures the worker's consumer from the configuration.
func workerConfig(c *config.Config, o workerOptions) consumer.Config {
	return consumer.Config{
		Name:             o.name,
		Concurrency:      c.Consumers.Concurrency,
		Prefetch:         c.Consumers.Prefetch,
		MaxDeliver:       c.Queue.MaxDeliver,
		MaxTasks:         c.Consumers.MaxTasks,
		TaskTimeout:      c.Consumers.TaskTimeout,
		HardTimeoutGrace: c.Consumers.HardTimeoutGrace,
		RetryBackoff:     c.Consumers.RetryBackoff,
		RetryBackoffMax:  c.Consumers.RetryBackoffMax,
		StoreTimeout:     c.Queue.PutTimeout,
		Init:             o.init,
		Run:              o.run,
		Holds:            o.holds,
		Out:              o.out,
		Labelled:         demo.Labelled(o.out),
	}
}

// ErrRetired is returned by a worker that stopped after
// consumers.max_tasks tasks (bin/consumer exits 3 then, and a producer
// that spawned it starts a fresh one).
var ErrRetired = consumer.ErrRetired

// ErrTimeLimit is returned by a worker that abandoned a handler at its
// hard time limit (consumers.task_timeout, procq.Timeout): the process
// should exit, since only that stops the handler's goroutine
// (bin/consumer exits 4 then, and a producer that spawned it starts a
// fresh one).
var ErrTimeLimit = consumer.ErrTimeLimit

func retired(w *consumer.Worker, err error) error {
	if err == nil && w.Retired() {
		return fmt.Errorf("%w (%d)", ErrRetired, w.MaxTasks())
	}
	return err
}
