package producer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/link"
	"github.com/procq/procq/protocol"
)

// subscribe starts reading the map's results.
func (m *mapping) subscribe(ctx context.Context) (<-chan jetstream.Msg, func(), error) {
	js := m.pool.q.js
	r := &resultsReader{m: m, js: js, subject: protocol.ResultSubject(m.id), log: m.pool.q.log,
		// Any stream's new leader: the cluster recovered from a node's
		// death far enough to elect one, and a consumer is worth asking for.
		events: link.Watch(js.Conn(), link.StreamLeaderElected("*"))}
	quit := make(chan struct{})
	if err := r.open(ctx, quit, time.Now().Add(firstOpenTimeout)); err != nil {
		r.events.Close()
		return nil, nil, fmt.Errorf("results consumer: %w", err)
	}
	ch := make(chan jetstream.Msg, 64)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(ch)
		r.run(ctx, ch, quit)
	})
	wg.Go(func() { r.watchReconnects(quit) })
	stop := func() {
		close(quit)
		(*r.it.Load()).Stop()
		wg.Wait()
		r.wg.Wait()
		r.events.Close()
	}
	return ch, stop, nil
}

// resultsBuffer is how many bytes of results the reader buffers.
const resultsBuffer = 4 << 20

// The results reader's clocks. Its normal path waits on the cluster's own
// signals; these bound what a signal may fail to end.
const (
	// resultsHeartbeat is the idle heartbeat the reader's pulls ask for
	// (the least nats.go allows): missing twice, the consumer is taken for
	// lost with its node, and a new one is opened.
	resultsHeartbeat = 500 * time.Millisecond
	// stallCheck is how long the reader waits for a result before it asks
	// the stream whether one is stored that its consumer does not deliver
	// (the fallback should a loss escape the signals).
	stallCheck = 5 * time.Second
	// checkTimeout bounds that question.
	checkTimeout = time.Second
	// askAgain is how long a request to create the consumer may go
	// unanswered before the same is asked again under another name, the
	// first request left open: a cluster whose meta leader died answers
	// no request until it elected another (an election no advisory of the
	// account tells), and a request it placed on a node that died is never
	// answered.
	askAgain = 500 * time.Millisecond
	// createTimeout bounds one request to create the consumer.
	createTimeout = 10 * time.Second
	// maxAsks is how many such requests may be open at once.
	maxAsks = int(createTimeout / askAgain)
	// retryPause is the pause after a request refused (no stream leader)
	// when no leader was elected meanwhile.
	retryPause = 250 * time.Millisecond
	// firstOpenTimeout bounds the first consumer's opening; past it the
	// map fails. A reopened one is waited for as long as the map lasts.
	firstOpenTimeout = 30 * time.Second
	// readerIdle is the InactiveThreshold of the reader's consumers: the
	// server removes one nobody pulls from for that long (a consumer left
	// by a reopening, or by a map that ended).
	readerIdle = 5 * time.Minute
)

// resultsReader reads one map's results, in stream order, exactly once,
// with an ephemeral consumer of its own (one replica, in memory, no acks)
// that it replaces whenever it may have lost it:
//   - missing heartbeats (jetstream.ErrNoHeartbeat): the consumer died
//     with its node, or the stream's new leader does not serve it;
//   - a gap in the consumer's delivery sequence: results lost in flight
//     (the connection broke under them);
//   - a terminal error of the pull (the consumer deleted);
//   - the fallback: no result for stallCheck while the stream holds one
//     past the last delivered.
//
// The new consumer starts after the last result delivered. Creating it
// waits for the cluster: for its meta leader, for the results stream's
// leader. Those waits end on the cluster's LEADER_ELECTED advisories and
// on the connection's reconnect (link.Events), with short fallbacks.
type resultsReader struct {
	m       *mapping
	js      jetstream.JetStream
	subject string
	log     *slog.Logger
	events  *link.Events

	last      uint64 // stream sequence of the last result delivered
	delivered uint64 // the current consumer's delivery sequence of it
	serial    int    // consumers asked for
	name      string // the current consumer's
	it        atomic.Pointer[jetstream.MessagesContext]
	wg        sync.WaitGroup // requests to create or delete consumers
	// reconnected: the connection was re-established, and the current
	// consumer's reading stopped for it.
	reconnected atomic.Bool
}

func (r *resultsReader) run(ctx context.Context, ch chan<- jetstream.Msg, quit <-chan struct{}) {
	for {
		it := *r.it.Load()
		msg, err := it.Next(jetstream.NextMaxWait(stallCheck))
		if err == nil {
			meta, merr := msg.Metadata()
			if merr == nil && meta.Sequence.Consumer != r.delivered+1 {
				err = fmt.Errorf("%w: delivery %d after %d", errGap, meta.Sequence.Consumer, r.delivered)
			} else {
				if merr == nil {
					r.delivered, r.last = meta.Sequence.Consumer, meta.Sequence.Stream
				}
				select {
				case ch <- msg:
				case <-quit:
					return
				}
				continue
			}
		}
		select {
		case <-quit:
			return // stopped
		default:
		}
		switch {
		case errors.Is(err, jetstream.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionClosed) || r.js.Conn().IsClosed():
			return
		case errors.Is(err, nats.ErrTimeout):
			if !r.stalled(ctx) {
				continue
			}
			r.log.Warn("results reader stalled with results stored; reading on with a new consumer",
				"map", r.m.id, "after_seq", r.last)
		case errors.Is(err, jetstream.ErrMsgIteratorClosed) && r.reconnected.Swap(false):
			r.log.Info("broker link re-established; reading on with a new consumer", "map", r.m.id,
				"after_seq", r.last, "consumer", r.name)
		case errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, errGap):
			r.log.Info("results consumer lost; reading on with a new consumer", "map", r.m.id,
				"after_seq", r.last, "consumer", r.name, "why", err)
		default:
			r.log.Warn("results consumer failed; reading on with a new consumer", "map", r.m.id,
				"after_seq", r.last, "consumer", r.name, "error", err)
		}
		it.Stop()
		if r.open(ctx, quit, time.Time{}) != nil {
			return // the map ended
		}
	}
}

// watchReconnects stops the reading of the current consumer when the
// connection was re-established: results in flight when it broke are
// lost (the consumer acks none), and the consumer, if it lived on the
// node that went away, is gone too. run then opens a new one.
func (r *resultsReader) watchReconnects(quit <-chan struct{}) {
	for {
		select {
		case <-r.events.Reconnected():
			r.reconnected.Store(true)
			(*r.it.Load()).Stop()
		case <-quit:
			return
		}
	}
}

// errGap says the consumer skipped deliveries: results lost in flight.
var errGap = errors.New("results lost in flight")

// open starts a consumer after the last result delivered and reads it. It
// tries until deadline (zero: until the map ends, when it fails), or until
// the connection is closed (link.Closed): no request on it can succeed.
func (r *resultsReader) open(ctx context.Context, quit <-chan struct{}, deadline time.Time) error {
	old := r.name
	for attempt := 1; ; attempt++ {
		changed := r.events.Changed()
		cons, err := r.create(ctx, quit)
		if err == nil {
			var it jetstream.MessagesContext
			// Buffer at most 500 messages and resultsBuffer bytes of
			// results in the client (or room for the largest message), so
			// memory does not depend on how big a map's results are: 500
			// messages of a 10,000-input chunk's results were 85 MB.
			it, err = cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(500, max(resultsBuffer, 2*int(r.js.Conn().MaxPayload()))),
				jetstream.PullHeartbeat(resultsHeartbeat))
			if err == nil {
				r.reconnected.Store(false)
				r.it.Store(&it)
				r.name, r.delivered = cons.CachedInfo().Name, 0
				select {
				case <-quit: // stop may have stopped the old iterator only
					it.Stop()
				default:
				}
				if old != "" {
					r.remove(old)
				}
				return nil
			}
		}
		select {
		case <-quit:
			return errStopped
		default:
		}
		if ctx.Err() != nil || !deadline.IsZero() && time.Now().After(deadline) {
			return err
		}
		if closed := link.Closed(r.js.Conn()); closed != nil {
			return closed
		}
		if attempt%20 == 1 {
			r.log.Warn("results consumer not opened; retrying", "attempt", attempt, "map", r.m.id, "after_seq", r.last, "error", err,
				"waiting_for", "the results stream's leader, or the cluster's meta leader")
		}
		// Refused (the stream has no leader yet): again once one is
		// elected, or after a pause.
		select {
		case <-changed:
		case <-time.After(retryPause):
		case <-quit:
			return errStopped
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// create asks the cluster for a consumer, and again under another name
// each askAgain while no request was answered and at once whenever a
// leader is elected or the link is back (requests made before may never
// be answered), each request open for up to createTimeout: the first
// consumer created is the one; others created meanwhile are deleted. It
// fails with the last refusal once every request has been answered with
// one.
func (r *resultsReader) create(ctx context.Context, quit <-chan struct{}) (jetstream.Consumer, error) {
	type answer struct {
		cons jetstream.Consumer
		err  error
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel() // the open requests end: their consumers, if any, are deleted
	answers := make(chan answer)
	var mu sync.Mutex
	taken := false // an answer was taken: later consumers are surplus
	open := 0
	ask := func() {
		r.serial++
		cfg := jetstream.ConsumerConfig{
			Name:              r.m.id + "_" + strconv.Itoa(r.serial),
			FilterSubject:     r.subject,
			AckPolicy:         jetstream.AckNonePolicy,
			DeliverPolicy:     jetstream.DeliverAllPolicy,
			Replicas:          1,
			MemoryStorage:     true,
			InactiveThreshold: readerIdle,
		}
		if r.last > 0 {
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.last+1
		}
		open++
		r.wg.Go(func() {
			actx, cancel := context.WithTimeout(cctx, createTimeout)
			cons, err := r.js.CreateConsumer(actx, protocol.ResultsStream, cfg)
			cancel()
			mu.Lock()
			surplus := taken
			mu.Unlock()
			if !surplus {
				select {
				case answers <- answer{cons, err}:
					return
				case <-cctx.Done():
				}
			}
			if err == nil {
				r.delete(cfg.Name)
			}
		})
	}
	take := func() { mu.Lock(); taken = true; mu.Unlock() }
	ask()
	tick := time.NewTicker(askAgain)
	defer tick.Stop()
	var lastErr error
	for {
		changed := r.events.Changed()
		select {
		case a := <-answers:
			open--
			if a.err == nil {
				take()
				return a.cons, nil
			}
			lastErr = a.err
			if open == 0 {
				take()
				return nil, lastErr
			}
		case <-tick.C:
			if open < maxAsks {
				ask()
			}
		case <-changed:
			// A leader elected, or the link back: what was asked before
			// may never be answered.
			if open < maxAsks {
				ask()
			}
		case <-quit:
			take()
			return nil, errStopped
		case <-ctx.Done():
			take()
			return nil, ctx.Err()
		}
	}
}

// remove deletes a consumer the reader no longer reads, in the background
// (stop waits for it).
func (r *resultsReader) remove(name string) {
	r.wg.Go(func() { r.delete(name) })
}

// delete deletes consumer name, bounded: one the server cannot reach (its
// node died) it removes itself once idle for readerIdle.
func (r *resultsReader) delete(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = r.js.DeleteConsumer(ctx, protocol.ResultsStream, name)
}

// stalled reports whether the stream holds a result of this map past the
// last one delivered. Not knowing counts as no: reading goes on, and the
// check is made again after the next stallCheck. It is given up at a
// leader's election or the link's return (the stream's leader that died
// answers no request, and reading must not wait for it), or after
// checkTimeout.
func (r *resultsReader) stalled(ctx context.Context) bool {
	ctx, cancel := r.events.Until(ctx, checkTimeout)
	defer cancel()
	last, err := r.m.pool.q.topo.Results.GetLastMsgForSubject(ctx, r.subject)
	return err == nil && last.Sequence > r.last
}
