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

	honored atomic.Bool   // a sentinel was taken: stop
	skipRun string        // a run that was over when the worker started
	results chan finished // tasks whose results wait to be published
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
// goroutine it started has exited and every finished task is acked.
func (w *Worker) Run(ctx context.Context) error {
	skip, err := w.overRun(ctx)
	if err != nil {
		return fmt.Errorf("consumer %s: %w", w.cfg.Name, err)
	}
	w.skipRun = skip
	w.log.InfoContext(ctx, "consumer started", "queue", w.queue,
		"concurrency", w.cfg.Concurrency, "prefetch", w.prefetch(), "skip_run", skip)

	it, err := w.topo.Consumer.Messages(
		jetstream.PullMaxMessages(w.prefetch()),
		jetstream.PullExpiry(w.cfg.FetchWait))
	if err != nil {
		return fmt.Errorf("consumer %s: %w", w.cfg.Name, err)
	}
	fetchCtx, stopFetching := context.WithCancel(ctx)
	defer stopFetching()
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()

	w.results = make(chan finished, ackQueue)
	msgs := make(chan jetstream.Msg)
	var g errgroup.Group
	g.Go(func() error { return w.fetch(fetchCtx, it, msgs) })
	var slots sync.WaitGroup
	for range w.cfg.Concurrency {
		slots.Go(func() {
			for msg := range msgs {
				if w.process(workCtx, msg) {
					stopFetching()
				}
			}
		})
	}
	var acker sync.WaitGroup
	acker.Go(w.resultLoop)
	loopsDone := make(chan struct{})
	var grace sync.WaitGroup
	grace.Go(func() { w.graceTimer(ctx, loopsDone, cancelWork) })

	err = g.Wait()
	slots.Wait()
	close(loopsDone)
	grace.Wait()
	close(w.results)
	acker.Wait()
	if err != nil {
		return fmt.Errorf("consumer %s: %w", w.cfg.Name, err)
	}
	w.log.InfoContext(ctx, "consumer stopped", "sentinel", w.honored.Load())
	return nil
}

// prefetch is how many messages the worker asks for ahead of its slots.
func (w *Worker) prefetch() int { return max(w.cfg.Prefetch, w.cfg.Concurrency) }

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

// fetch feeds the slots from the pull iterator until ctx ends. It then
// drains the iterator and hands every prefetched message back at once, so
// a stopping consumer keeps no work and no sentinel from the others.
func (w *Worker) fetch(ctx context.Context, it jetstream.MessagesContext, msgs chan<- jetstream.Msg) error {
	defer close(msgs)
	var err error
	for ctx.Err() == nil {
		var msg jetstream.Msg
		msg, err = it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				err = nil
				break
			}
			if errors.Is(err, nats.ErrConnectionClosed) {
				break
			}
			level := slog.LevelWarn
			if errors.Is(err, jetstream.ErrNoHeartbeat) {
				// A missed idle heartbeat on a loaded machine; the iterator
				// pulls again by itself.
				level = slog.LevelInfo
			}
			w.log.Log(ctx, level, "fetch failed", "error", err)
			_ = task.Sleep(ctx, retryPause)
			err = nil
			continue
		}
		select {
		case msgs <- msg:
		case <-ctx.Done():
			w.settle(ctx, "hand back", msg.Nak())
		}
	}
	it.Drain()
	for {
		msg, derr := it.Next(jetstream.NextMaxWait(time.Second))
		if derr != nil {
			break
		}
		w.settle(ctx, "hand back", msg.Nak())
	}
	return err
}

const retryPause = 250 * time.Millisecond

// process handles one message and reports whether it was this worker's
// sentinel.
func (w *Worker) process(ctx context.Context, msg jetstream.Msg) bool {
	if msg.Subject() == task.SentinelSubject(w.queue) {
		return w.sentinel(ctx, msg)
	}
	w.work(ctx, msg)
	return false
}
