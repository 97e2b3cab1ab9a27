package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/procq/procq/broker"
	"github.com/procq/procq/task"
)

// Worker takes tasks from one queue until it takes its sentinel or its
// context ends.
type Worker struct {
	cfg     Config
	queue   string
	js      jetstream.JetStream
	topo    *broker.Topology
	reg     *task.Registry
	log     *slog.Logger
	ackWait time.Duration

	honored atomic.Bool // a sentinel was taken: stop
	skipRun string      // a run that was over when the worker started
}

// New builds a worker for the queue topo was declared for. The registry
// says which task kinds it runs.
func New(cfg Config, js jetstream.JetStream, topo *broker.Topology, reg *task.Registry, logger *slog.Logger) (*Worker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	info := topo.Consumer.CachedInfo()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Worker{
		cfg:     cfg,
		queue:   task.QueueOfFilter(info.Config.FilterSubject),
		js:      js,
		topo:    topo,
		reg:     reg,
		log:     logger.With("consumer", cfg.Name),
		ackWait: info.Config.AckWait,
	}, nil
}

// Run pulls and runs tasks until the worker takes its sentinel (it returns
// nil) or ctx ends. On ctx's end it stops fetching, lets in-flight tasks
// finish for StopTimeout, then cancels them; it returns only after every
// goroutine it started has exited.
func (w *Worker) Run(ctx context.Context) error {
	skip, err := w.overRun(ctx)
	if err != nil {
		return fmt.Errorf("consumer %s: %w", w.cfg.Name, err)
	}
	w.skipRun = skip
	w.log.InfoContext(ctx, "consumer started", "queue", w.queue,
		"concurrency", w.cfg.Concurrency, "skip_run", skip)

	fetchCtx, stopFetching := context.WithCancel(ctx)
	defer stopFetching()
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()

	loopsDone := make(chan struct{})
	var grace sync.WaitGroup
	grace.Go(func() { w.graceTimer(ctx, loopsDone, cancelWork) })

	var g errgroup.Group
	for range w.cfg.Concurrency {
		g.Go(func() error { return w.loop(fetchCtx, workCtx, stopFetching) })
	}
	err = g.Wait()
	close(loopsDone)
	grace.Wait()
	if err != nil {
		return fmt.Errorf("consumer %s: %w", w.cfg.Name, err)
	}
	w.log.InfoContext(ctx, "consumer stopped", "sentinel", w.honored.Load())
	return nil
}

// TookSentinel reports whether Run ended on a sentinel.
func (w *Worker) TookSentinel() bool { return w.honored.Load() }

// graceTimer cancels in-flight work StopTimeout after ctx ends, unless the
// loops finish first.
func (w *Worker) graceTimer(ctx context.Context, loopsDone <-chan struct{}, cancelWork func()) {
	select {
	case <-loopsDone:
		return
	case <-ctx.Done():
	}
	t := time.NewTimer(w.cfg.StopTimeout)
	defer t.Stop()
	select {
	case <-loopsDone:
	case <-t.C:
		w.log.Warn("stop timeout: cancelling in-flight tasks", "timeout", w.cfg.StopTimeout)
		cancelWork()
	}
}

// loop is one fetch-and-run slot; Concurrency of them run at once. Each
// holds at most the one message it works on, so no consumer hoards work or
// sentinels.
func (w *Worker) loop(fetchCtx, workCtx context.Context, stopFetching func()) error {
	for fetchCtx.Err() == nil {
		msg, err := w.next(fetchCtx)
		switch {
		case err == nil:
		case errors.Is(err, nats.ErrConnectionClosed):
			return err
		case fetchCtx.Err() != nil, errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
			continue
		default:
			w.log.Warn("fetch failed", "error", err)
			sleepCtx(fetchCtx, retryPause)
			continue
		}
		if w.process(workCtx, msg) {
			stopFetching()
		}
	}
	return nil
}

const retryPause = 250 * time.Millisecond

func (w *Worker) next(ctx context.Context) (jetstream.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.FetchWait)
	defer cancel()
	return w.topo.Consumer.Next(jetstream.FetchContext(ctx))
}

// process handles one message and reports whether it was this worker's
// sentinel.
func (w *Worker) process(ctx context.Context, msg jetstream.Msg) bool {
	if msg.Subject() == task.SentinelSubject(w.queue) {
		return w.sentinel(ctx, msg)
	}
	w.work(ctx, msg)
	return false
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
