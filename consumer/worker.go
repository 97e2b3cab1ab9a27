package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
	"github.com/procq/procq/unique"
)

// Worker takes tasks from one queue until it takes its sentinel or its
// context ends.
type Worker struct {
	cfg        Config
	queue      string
	js         jetstream.JetStream
	topo       *protocol.Topology
	reg        *task.Registry
	log        *slog.Logger
	ackWait    time.Duration
	maxPayload int

	leases    *leases
	window    *window
	levels    []*level       // the queue's priorities, highest first
	waitOrder []*level       // the same, the default first
	inbox     *inbox         // what was received and not started, by level
	levelWake chan struct{}  // a waiting pull ended
	took      atomic.Bool    // a sentinel was taken: stop
	tasks     atomic.Int64   // task messages taken (sentinels not counted)
	reserved  atomic.Int64   // messages the open waiting pulls may still bring
	retired   atomic.Bool    // MaxTasks reached: stopped taking tasks
	stats     stats          // for the presence key
	skipRun   string         // by hand: a run that was over when the worker started
	results   chan finished  // tasks whose results wait to be stored
	unique    *unique.Bucket // the unique tasks' keys, released on success

	cluster      clusterWatch // the cluster's signals (failover.go)
	storeFailing atomic.Int64 // unix ns of the first of the failed stores of answers since the last stored; 0: none
	storeLast    atomic.Int64 // unix ns of the last failed store of answers
	cancels      *cancels     // the queue's cancel marks; nil without the bucket
	timedOut     atomic.Bool  // a handler was abandoned at its hard time limit
	stopFetching func()       // stops taking tasks (set in Run)
}

// New builds a worker for the queue topo was declared for. The registry
// says which task kinds it runs.
func New(cfg Config, js jetstream.JetStream, topo *protocol.Topology, reg *task.Registry, logger *slog.Logger) (*Worker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	info := topo.Consumer.CachedInfo()
	queue, _, ok := protocol.ParseDurable(info.Name)
	if !ok {
		return nil, fmt.Errorf("consumer: %q is no queue's durable", info.Name)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	log := logger.With("consumer", cfg.Name)
	maxPayload := int(js.Conn().MaxPayload())
	if maxPayload <= 0 {
		maxPayload = 1 << 20
	}
	var cs *cancels
	if topo.Cancel != nil {
		cs = newCancels(queue, log)
	}
	w := &Worker{
		cancels:    cs,
		cfg:        cfg,
		queue:      queue,
		js:         js,
		topo:       topo,
		reg:        reg,
		log:        log,
		ackWait:    info.Config.AckWait,
		maxPayload: maxPayload,
		leases:     newLeases(info.Config.AckWait, cfg.Holds, log),
		window:     newWindow(cfg, info.Config.MaxAckPending),
		inbox:      newInbox(),
		levelWake:  make(chan struct{}, 1),
		unique:     unique.NewBucket(js, 0, log),
	}
	w.levels, w.waitOrder = newLevels(topo)
	return w, nil
}

// Run pulls and runs tasks until the worker takes its sentinel (it returns
// nil) or ctx ends. On ctx's end it stops fetching, hands back what it has
// not started, lets in-flight tasks finish for StopTimeout, then cancels
// them; it returns only after every goroutine it started has exited and
// every finished task is settled. It returns ErrBrokerLost when the
// connection is closed for good.
func (w *Worker) Run(ctx context.Context) error {
	if w.cfg.Init != nil {
		w.log.InfoContext(ctx, "running the initializer")
		if err := w.cfg.Init(ctx); err != nil {
			w.log.ErrorContext(ctx, "initializer failed", "error", err)
			return fmt.Errorf("consumer %s: initializer: %w", w.cfg.Name, err)
		}
	}
	if w.cfg.Run == "" {
		skip, err := w.overRun(ctx)
		if err != nil {
			return fmt.Errorf("consumer %s: %w", w.cfg.Name, err)
		}
		w.skipRun = skip
	}
	w.log.InfoContext(ctx, "consumer started", "queue", w.queue, "concurrency", w.cfg.Concurrency,
		"prefetch", w.prefetchMode(), "run", w.cfg.Run, "skip_run", w.skipRun, "ack_wait", w.ackWait)

	defer w.watchCluster(ctx)()
	fetchCtx, stopFetching := context.WithCancel(ctx)
	defer stopFetching()
	w.stopFetching = stopFetching
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	leaseCtx, stopLeases := context.WithCancel(context.WithoutCancel(ctx))
	var keeper sync.WaitGroup
	keeper.Go(func() { w.leases.keep(leaseCtx) })
	keeper.Go(func() { w.announce(leaseCtx) })
	if w.cancels != nil {
		w.cancels.watch(leaseCtx, w.topo.Cancel, &keeper)
	}

	w.results = make(chan finished, ackQueue)
	var g errgroup.Group
	g.Go(func() error { return w.fetch(fetchCtx) })
	var slots sync.WaitGroup
	for range w.cfg.Concurrency {
		slots.Go(func() {
			for {
				msg, ok := w.inbox.take() // the highest priority's first
				if !ok {
					break
				}
				if fetchCtx.Err() != nil {
					// Stopping: what was not started goes back at once.
					w.nak(ctx, msg, 0, "hand back on stop")
					w.window.settled(0)
					continue
				}
				start := time.Now()
				if w.process(workCtx, msg) {
					stopFetching()
				}
				d := time.Since(start)
				if msg.Subject() == protocol.SentinelSubject(w.queue) {
					d = 0 // a sentinel is no task: its handling says nothing of their length
				}
				w.window.settled(d)
			}
		})
	}
	var acker sync.WaitGroup
	acker.Go(func() { w.resultLoop(ctx) })
	loopsDone := make(chan struct{})
	var grace sync.WaitGroup
	grace.Go(func() { w.graceTimer(ctx, loopsDone, cancelWork) })

	err := g.Wait()
	slots.Wait()
	close(loopsDone)
	grace.Wait()
	close(w.results)
	acker.Wait()
	stopLeases()
	keeper.Wait()
	w.leases.flush()
	if err != nil {
		return fmt.Errorf("consumer %s: %w", w.cfg.Name, err)
	}
	if w.timedOut.Load() {
		w.log.ErrorContext(ctx, "consumer stopped after a task ran past its hard time limit", "tasks", w.tasks.Load())
		return fmt.Errorf("consumer %s: %w", w.cfg.Name, ErrTimeLimit)
	}
	w.log.InfoContext(ctx, "consumer stopped", "sentinel", w.took.Load(), "retired", w.Retired(), "tasks", w.tasks.Load())
	return nil
}

// Prefetch is how many messages the worker may hold now, running or
// waiting for a slot: fixed when Config.Prefetch pins it, else adapted
// to the recent task durations.
func (w *Worker) Prefetch() int { return w.window.Limit() }

// PeakPrefetch is the deepest prefetch the worker reached.
func (w *Worker) PeakPrefetch() int { return int(w.window.peak.Load()) }

func (w *Worker) prefetchMode() string {
	if w.window.pinned {
		return fmt.Sprint(w.window.max)
	}
	return fmt.Sprintf("adaptive %d..%d", w.cfg.Concurrency, w.window.max)
}

// MaxTasks is the worker's Config.MaxTasks.
func (w *Worker) MaxTasks() int { return w.cfg.MaxTasks }

// tasksLeft is how many more task messages the worker may ask for under
// MaxTasks (all it likes without), beyond what its open waiting pulls may
// still bring, and whether it has taken its last.
func (w *Worker) tasksLeft() (left int, retire bool) {
	if w.cfg.MaxTasks <= 0 {
		return math.MaxInt, false
	}
	taken := int(w.tasks.Load())
	return w.cfg.MaxTasks - taken - int(w.reserved.Load()), taken >= w.cfg.MaxTasks
}

// Retired reports whether Run ended because the worker took MaxTasks
// tasks.
func (w *Worker) Retired() bool { return w.retired.Load() && !w.took.Load() }

// TookSentinel reports whether Run ended on a sentinel.
func (w *Worker) TookSentinel() bool { return w.took.Load() }

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

// process handles one message and reports whether it was this worker's
// sentinel.
func (w *Worker) process(ctx context.Context, msg jetstream.Msg) bool {
	if msg.Subject() == protocol.SentinelSubject(w.queue) {
		return w.sentinel(ctx, msg)
	}
	w.work(ctx, msg)
	return false
}
