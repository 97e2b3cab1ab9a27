package producer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/procq/procq/link"
	"github.com/procq/procq/protocol"
)

// Run is one run of a queue, the producer's side of the run protocol:
//
//	| step  | what the producer does                                          |
//	|-------|-----------------------------------------------------------------|
//	| Begin | remove what maps of dead producers left (TaskQueue.Reap); purge old |
//	|       | sentinels; record the run as the queue's current, open run      |
//	| Spawn | start the consumer processes, each told the run (--run), and    |
//	|       | wait until they pull; replace a child that dies (max_restarts), |
//	|       | handing back at once what it held                               |
//	| work  | put tasks and maps on the run's subjects (work.<run>[.<map>]);  |
//	|       | a map fails when no consumer is left (NoConsumers)              |
//	| End   | put one sentinel per consumer, waiting for room in a full queue;|
//	|       | record the run closed                                           |
//	| Join  | wait for the children; while more children live than sentinels |
//	|       | are left (one was lost with a killed child), put more           |
//
// The consumer's side is protocol.JudgeSentinel: a consumer takes a sentinel of
// the current run only once its run has no unfinished work, so sentinels
// never strand work; a sentinel of any other run is dropped. Every wait is
// bounded or tied to a process's liveness: Spawn waits for ReadyTimeout,
// End for the queue's PutTimeout, Join for children that are alive and
// will be given a sentinel, and a map for a live consumer (IdleTimeout by
// hand, the children in spawn mode).
type Run struct {
	q     *TaskQueue
	id    string
	cfg   RunConfig
	group *Group
	log   *slog.Logger
}

// RunConfig configures a Run.
type RunConfig struct {
	// Consumers is how many consumers serve the run: sentinels at End, and
	// processes to start where Spawn is set. Defaults to 1.
	Consumers int
	// Spawn, when set, says how to start the consumer processes; nil means
	// they are started by hand. Its Run and Handback are set by the Run.
	Spawn *SpawnConfig
	// ReadyTimeout bounds Spawn's wait for the children to pull. Defaults
	// to 30s.
	ReadyTimeout time.Duration
	// IdleTimeout is how long a map waits with no live consumer before it
	// fails with ErrNoConsumers (consumers started by hand). Defaults to
	// 30s.
	IdleTimeout time.Duration
	// CheckEvery is how often Join and the consumer watch look. Defaults
	// to 1s.
	CheckEvery time.Duration
}

func (c RunConfig) withDefaults() RunConfig {
	c.Consumers = cmp.Or(c.Consumers, 1)
	c.ReadyTimeout = cmp.Or(c.ReadyTimeout, 30*time.Second)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, protocol.DefaultIdleTimeout)
	c.CheckEvery = cmp.Or(c.CheckEvery, time.Second)
	return c
}

// Begin opens a new run of q: it removes sentinels left over from earlier
// runs and records the run as the queue's current one, so that only this
// run's sentinels stop consumers.
func Begin(ctx context.Context, q *TaskQueue, cfg RunConfig) (*Run, error) {
	r := &Run{q: q, id: nuid.Next(), cfg: cfg.withDefaults()}
	r.log = q.log.With("run", r.id, "queue", q.name)
	if err := q.Reap(ctx); err != nil {
		return nil, err
	}
	if err := q.topo.Tasks.Purge(ctx, jetstream.WithPurgeSubject(protocol.SentinelSubject(q.name))); err != nil {
		return nil, fmt.Errorf("purge stale sentinels: %w", err)
	}
	rec := protocol.RunRecord{Run: r.id, State: protocol.RunOpen, Started: time.Now().UTC()}
	if err := q.putRecord(ctx, rec); err != nil {
		return nil, err
	}
	r.log.InfoContext(ctx, "run started")
	return r, nil
}

// ID is the run's id.
func (r *Run) ID() string { return r.id }

// Queue is the run's queue.
func (r *Run) Queue() *TaskQueue { return r.q }

// Group is the run's consumer processes, nil before Spawn or by hand.
func (r *Run) Group() *Group { return r.group }

// Spawn starts the run's consumer processes, each told this run, and waits
// until every one pulls from the queue (an idle consumer keeps one pull
// request waiting), so that work timed from now measures work, not
// start-up. Without a SpawnConfig it does nothing.
func (r *Run) Spawn(ctx context.Context) error {
	if r.cfg.Spawn == nil {
		return nil
	}
	sc := *r.cfg.Spawn
	sc.Run = r.id
	sc.Handback = r.handback
	g, err := Spawn(ctx, sc, r.log)
	if err != nil {
		return err
	}
	r.group = g
	r.log.InfoContext(ctx, "waiting for consumers to pull", "consumers", r.cfg.Consumers,
		"waiting_for", "idle consumer processes", "timeout", r.cfg.ReadyTimeout)
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-g.Dead():
			cancel(fmt.Errorf("%w: every consumer process died", ErrNoConsumers))
		case <-wctx.Done():
		}
	}()
	if err := r.q.WaitReady(wctx, r.cfg.Consumers, r.cfg.ReadyTimeout); err != nil {
		return errors.Join(err, context.Cause(wctx))
	}
	return nil
}

// handback gives the messages a dead child held back to the queue at once:
// the server takes a -NAK on a message's ack subject from any connection.
func (r *Run) handback(ackSubjects []string) {
	nc := r.q.js.Conn()
	for _, s := range ackSubjects {
		if err := nc.Publish(s, []byte("-NAK")); err != nil {
			r.log.Warn("hand back failed; the message comes back after its lease", "error", err)
			return
		}
	}
	_ = nc.FlushTimeout(time.Second)
}

// Watch returns a context that ends with ErrNoConsumers as its cause when
// no consumer is left to do the run's work: in spawn mode, once every
// child died for good; by hand, once no consumer of the queue has been
// present for IdleTimeout. Call stop when done watching.
func (r *Run) Watch(ctx context.Context) (wctx context.Context, stop func()) {
	var dead <-chan struct{}
	if r.group != nil {
		dead = r.group.Dead()
	}
	return r.q.Watch(ctx, dead, r.cfg.IdleTimeout, r.cfg.CheckEvery)
}

// Watch returns a context that ends with ErrNoConsumers as its cause when
// dead is closed (spawned consumers all died for good) or, where dead is
// nil (consumers started by hand), when no consumer of the queue has been
// seen present for idle, looking every check: a look that fails (the
// broker unreachable, the bucket gone) sees none. It ends with
// ErrBrokerLost as its cause once the queue's connection is closed for
// good. Call stop when done watching.
func (q *TaskQueue) Watch(ctx context.Context, dead <-chan struct{}, idle, check time.Duration) (wctx context.Context, stop func()) {
	ctx, stopClosed := link.UntilClosed(ctx, q.js.Conn())
	wctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(check)
		defer t.Stop()
		lastSeen := time.Now()
		var lastErr error // of the last look, if it failed
		for {
			select {
			case <-wctx.Done():
				return
			case <-dead:
				cancel(fmt.Errorf("%w: every consumer process died and none is left to replace it (consumers.max_restarts)", ErrNoConsumers))
				return
			case <-t.C:
			}
			if dead != nil {
				continue
			}
			n, err := q.present(wctx)
			if err == nil && n > 0 {
				lastSeen, lastErr = time.Now(), nil
				continue
			}
			if err != nil && wctx.Err() == nil {
				lastErr = err
				q.log.Debug("consumers' presence not read", "queue", q.name, "error", err)
			}
			if gone := time.Since(lastSeen); gone >= idle {
				err := fmt.Errorf("%w on queue %s for %v (pool.idle_timeout)", ErrNoConsumers, q.name, gone.Round(time.Second))
				if lastErr != nil {
					err = fmt.Errorf("%w; the last look failed: %v", err, lastErr)
				}
				cancel(err)
				return
			}
		}
	}()
	return wctx, func() { cancel(nil); <-done; stopClosed() }
}

// Do runs fn as the work of the run, between its other steps: it starts
// the consumers (Spawn) and waits until they pull, runs fn with a context
// that ends with ErrNoConsumers as its cause once no consumer is left
// (Watch), puts the sentinels (End) and waits for the children (Join).
// When Spawn, fn or End fails, the children are stopped (SIGTERM) rather
// than left waiting for sentinels that will never come; Do returns that
// error joined with what Join reports.
func (r *Run) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err := r.Spawn(ctx)
	if err == nil {
		wctx, stop := r.Watch(ctx)
		err = fn(wctx)
		stop()
	}
	if err == nil {
		err = r.End(ctx)
	}
	if err != nil {
		cancel()
	}
	return errors.Join(err, r.Join(ctx))
}

// End puts one sentinel per consumer, waiting for room in a full queue,
// and records the run as closed.
func (r *Run) End(ctx context.Context) error {
	if err := r.q.End(ctx, r.id, r.cfg.Consumers); err != nil {
		return err
	}
	return nil
}

// Join waits for the spawned consumers to exit and reports which failed.
// While more children live than sentinels of the run are left in the
// queue (a child was killed after taking one, or a replacement started
// after they were put), it puts the missing ones, so no child waits for a
// sentinel that will never come. ctx ending stops the children.
func (r *Run) Join(ctx context.Context) error {
	if r.group == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- r.group.Wait() }()
	t := time.NewTicker(r.cfg.CheckEvery)
	defer t.Stop()
	short := 0
	r.log.InfoContext(ctx, "joining consumer processes", "waiting_for", "consumers to take their sentinels")
	for {
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			r.group.cancel() // SIGTERM: the children stop cleanly
			return <-done
		case <-t.C:
		}
		live := r.group.Live()
		left, err := r.q.sentinelsLeft(ctx, r.id)
		if err != nil || live <= left {
			short = 0
			continue
		}
		// Twice in a row, so that a child that just took its sentinel and
		// is exiting is not counted as waiting.
		if short++; short < 2 {
			continue
		}
		short = 0
		more := live - left
		r.log.WarnContext(ctx, "putting missing sentinels", "live_consumers", live, "sentinels_left", left, "more", more)
		if err := r.q.putSentinels(ctx, r.id, more, "extra."+strconv.FormatInt(time.Now().UnixNano(), 36)); err != nil {
			r.log.WarnContext(ctx, "put missing sentinels", "error", err)
		}
	}
}

// sentinelsLeft counts the sentinels of run still in the queue (taken ones
// are acked and gone).
func (q *TaskQueue) sentinelsLeft(ctx context.Context, run string) (int, error) {
	// All sentinels on the subject are this run's: Begin purged the others.
	n, err := protocol.Count(ctx, q.topo.Tasks, protocol.SentinelSubject(q.name))
	return int(n), err
}

// present counts the consumers of the queue whose presence key is alive.
func (q *TaskQueue) present(ctx context.Context) (int, error) {
	lister, err := q.topo.Presence.ListKeysFiltered(ctx, protocol.PresenceFilter(q.name))
	if err != nil {
		return 0, err
	}
	n := 0
	for range lister.Keys() {
		n++
	}
	return n, nil
}

// putSentinels puts n sentinels of run; tag keeps their message ids apart
// from earlier ones.
func (q *TaskQueue) putSentinels(ctx context.Context, run string, n int, tag string) error {
	for i := range n {
		m := &nats.Msg{Subject: protocol.SentinelSubject(q.name), Header: nats.Header{}}
		m.Header.Set(protocol.HeaderSentinel, "1")
		m.Header.Set(protocol.HeaderRun, run)
		m.Header.Set(protocol.HeaderMsgID, run+".sentinel."+tag+"."+strconv.Itoa(i))
		if err := q.publish(ctx, m); err != nil {
			return fmt.Errorf("put sentinel %d of %d: %w", i+1, n, err)
		}
	}
	return nil
}
