package consumer

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/link"
	"github.com/procq/procq/protocol"
)

// Priorities on the consumer's side. Each level of the queue is a durable
// of its own (protocol.LevelDurable); the worker pulls them in order,
// highest first, and keeps what it received in one local buffer per level
// (inbox), from which a free slot takes the highest level's oldest. So a
// higher-priority task is started before any lower one the worker holds.
//
// What the worker cannot see it cannot take first, and round trips are
// what a worker's throughput is made of, so a level is looked at as
// follows:
//   - a level that had work at the last look is pulled at every pull, the
//     levels above it first;
//   - while the worker holds unstarted tasks, it keeps a waiting pull for
//     one task open on each level above them, beyond its window: a
//     higher-priority task comes the moment it is put, and overtakes the
//     worker's prefetch (listenAbove);
//   - otherwise a level found empty is looked at again at most every
//     Config.PriorityCheck, at a pull the worker makes anyway;
//   - an idle worker (every level empty) keeps a waiting pull open on each
//     level, as it kept one on its queue before (waitAll).
//
// Work of the default level alone thus costs no more round trips than
// before: a waiting pull on the high level renewed every FetchWait, or a
// look at it every PriorityCheck.

// level is one priority of the queue as the worker pulls it.
type level struct {
	p    protocol.Priority
	rank int
	cons jetstream.Consumer

	// empty: the last look found nothing; lookedAt is when (Unix ns).
	// waiting: a waiting pull is open on the level.
	empty    atomic.Bool
	lookedAt atomic.Int64
	waiting  atomic.Bool
}

// looked records a look at the level that got got tasks. A look that got
// some, fewer than it asked for, leaves the level due: what was put
// meanwhile comes with the next pull, and only a look that finds nothing
// makes the worker wait.
func (l *level) looked(got int, now time.Time) {
	l.empty.Store(got == 0)
	l.lookedAt.Store(now.UnixNano())
}

// due reports whether the level is worth a pull now: it had work at the
// last look, or it was empty that look longer than every ago and no
// waiting pull watches it.
func (l *level) due(now time.Time, every time.Duration) bool {
	if l.cons == nil {
		return false
	}
	if !l.empty.Load() {
		return true
	}
	return !l.waiting.Load() && now.Sub(time.Unix(0, l.lookedAt.Load())) >= every
}

// nextLook is when an empty level without a waiting pull is due.
func (l *level) nextLook(every time.Duration) time.Time {
	return time.Unix(0, l.lookedAt.Load()).Add(every)
}

// newLevels are the queue's levels, highest first, and the same with the
// default level first (the order of waiting pulls); a level whose durable
// the topology lacks is never pulled (its cons nil).
func newLevels(topo *protocol.Topology) (byRank, waitOrder []*level) {
	byRank = make([]*level, 0, protocol.NumPriorities)
	for _, p := range protocol.Priorities() {
		c := topo.Levels[p.Rank()]
		if p == protocol.PriorityDefault && c == nil {
			c = topo.Consumer
		}
		byRank = append(byRank, &level{p: p, rank: p.Rank(), cons: c})
	}
	waitOrder = []*level{byRank[protocol.DefaultRank]}
	for _, l := range byRank {
		if l.p != protocol.PriorityDefault {
			waitOrder = append(waitOrder, l)
		}
	}
	return byRank, waitOrder
}

// inbox holds the messages a worker received and has not started, one
// first-in-first-out list per level; take hands out the highest level's
// oldest.
type inbox struct {
	mu     sync.Mutex
	ready  sync.Cond
	lists  [protocol.NumPriorities]msgList
	n      int
	closed bool
}

// msgList is a first-in-first-out list that reuses its array once
// emptied.
type msgList struct {
	msgs []jetstream.Msg
	head int
}

func (l *msgList) len() int { return len(l.msgs) - l.head }

func (l *msgList) push(m jetstream.Msg) { l.msgs = append(l.msgs, m) }

func (l *msgList) pop() jetstream.Msg {
	m := l.msgs[l.head]
	l.msgs[l.head] = nil
	l.head++
	if l.head == len(l.msgs) {
		l.msgs, l.head = l.msgs[:0], 0
	}
	return m
}

func newInbox() *inbox {
	b := &inbox{}
	b.ready.L = &b.mu
	return b
}

// put adds msg, received from the level of rank rank.
func (b *inbox) put(rank int, msg jetstream.Msg) {
	b.mu.Lock()
	b.lists[rank].push(msg)
	b.n++
	b.mu.Unlock()
	b.ready.Signal()
}

// take waits for a message and returns the highest level's oldest; false
// once the inbox is closed and empty.
func (b *inbox) take() (jetstream.Msg, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.n == 0 {
		if b.closed {
			return nil, false
		}
		b.ready.Wait()
	}
	for r := range b.lists {
		if b.lists[r].len() > 0 {
			b.n--
			return b.lists[r].pop(), true
		}
	}
	panic("inbox: count and lists disagree")
}

// close lets take return false once the inbox is empty: nothing more
// will be put.
func (b *inbox) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.ready.Broadcast()
}

// highestHeld is the rank of the highest level of the messages held; -1
// when none.
func (b *inbox) highestHeld() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	for r := range b.lists {
		if b.lists[r].len() > 0 {
			return r
		}
	}
	return -1
}

// fetch pulls as many messages as the worker has room for (its window),
// the levels in order, and feeds them to the slots (the inbox) until ctx
// ends. Nothing is buffered out of the worker's sight: every message it
// receives is held (its lease kept) from the moment it arrives until it
// is settled.
func (w *Worker) fetch(ctx context.Context) error {
	var pulls sync.WaitGroup // the waiting pulls
	defer func() {
		pulls.Wait()
		w.inbox.close()
	}()
	lost := make(chan error, len(w.levels))
	last := w.window.Limit()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil {
		if limit := w.window.Limit(); limit != last && (limit >= 2*last || 2*limit <= last) {
			w.log.Debug("prefetch adapted", "prefetch", limit, "was", last)
			last = limit
		}
		left, retire := w.tasksLeft()
		if retire {
			w.retired.Store(true)
			w.log.InfoContext(ctx, "max_tasks reached: finishing the tasks in hand, then retiring", "max_tasks", w.cfg.MaxTasks)
			return nil
		}
		// A higher level than anything the worker holds unstarted comes
		// first, beyond the window.
		left -= w.listenAbove(ctx, &pulls, left, lost)
		var next time.Time // when to look again unless woken first
		if n := min(w.window.room(), left); n > 0 {
			// First what is there now, as much as the window allows; more
			// at once while that finds some.
			got, err := w.round(ctx, n)
			if err != nil {
				return err
			}
			if got > 0 {
				continue
			}
			// Only when every level is empty (those looked at just now, and
			// the others not due), a waiting pull on each.
			next = w.waitAll(ctx, &pulls, left, lost)
		}
		if next.IsZero() {
			next = time.Now().Add(time.Hour)
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
		case err := <-lost:
			return err
		case <-w.window.wake:
		case <-w.levelWake:
		case <-timer.C:
		}
	}
	return nil
}

// waitAll opens a waiting pull on each level that has none, each for no
// more than the slots and within left: an open pull request reserves what
// arrives next, and a deep one would take a whole batch of long tasks
// from the other consumers. When left does not cover every level (a
// worker about to retire, MaxTasks), the default level's comes first; it
// returns when a level left without one is due to be looked at.
func (w *Worker) waitAll(ctx context.Context, pulls *sync.WaitGroup, left int, lost chan<- error) time.Time {
	var next time.Time
	opened := false
	for _, l := range w.waitOrder {
		if l.cons == nil || l.waiting.Load() {
			continue
		}
		k := min(w.window.room(), w.cfg.Concurrency, left)
		if k <= 0 {
			if at := l.nextLook(w.cfg.PriorityCheck); next.IsZero() || at.Before(next) {
				next = at
			}
			continue
		}
		if !opened {
			w.window.idle() // the queue ran dry
			opened = true
		}
		left -= k
		w.reserved.Add(int64(k))
		l.waiting.Store(true)
		pulls.Go(func() { w.waitPull(ctx, l, k, lost) })
	}
	return next
}

// round pulls up to n messages at once, the levels in order: each that is
// due (had work, or was last found empty PriorityCheck ago) gets what the
// levels before it left. It returns how many it received: none means every
// level is empty, and the worker waits for work (waitAll) instead of
// looking again. Looking again while a round of looks lasted longer than
// PriorityCheck (three round trips to a broker 5 ms away) kept an idle
// worker polling without end, no waiting pull ever open: a producer
// waiting for idle consumers saw none.
func (w *Worker) round(ctx context.Context, n int) (int, error) {
	now := time.Now()
	total := 0
	for _, l := range w.levels {
		if n == 0 {
			break
		}
		if !l.due(now, w.cfg.PriorityCheck) {
			continue
		}
		got, err := w.pull(ctx, l, n, true)
		if err != nil {
			return total, err
		}
		l.looked(got, time.Now())
		n -= got
		total += got
	}
	return total, nil
}

// listenAbove keeps a waiting pull for one task open on each level above
// every unstarted task the worker holds, beyond its window: a
// higher-priority task put meanwhile comes at once, and the next free slot
// starts it before what the worker holds, however deep its prefetch. It
// costs a pull request per FetchWait; a busy worker holds at most one such
// task per level. It returns how many tasks it reserved against left.
func (w *Worker) listenAbove(ctx context.Context, pulls *sync.WaitGroup, left int, lost chan<- error) int {
	high := w.inbox.highestHeld()
	opened := 0
	for _, l := range w.levels {
		if opened == left || l.rank >= high {
			break // nothing unstarted, or a level the worker holds already, or lower
		}
		if l.cons == nil || l.waiting.Load() {
			continue
		}
		opened++
		w.reserved.Add(1)
		l.waiting.Store(true)
		pulls.Go(func() { w.waitPull(ctx, l, 1, lost) })
	}
	return opened
}

// waitPull keeps a waiting pull for up to k messages open on an empty
// level, for FetchWait, k reserved against MaxTasks meanwhile. Messages go
// to the slots as they come; once it has them all, the level may hold
// more and the fetch loop is woken to pull it.
func (w *Worker) waitPull(ctx context.Context, l *level, k int, lost chan<- error) {
	got, err := w.pullFrom(ctx, l, k, false, true)
	w.reserved.Add(-int64(k - got))
	if err != nil {
		select {
		case lost <- err:
		default: // one is waiting to be read already: the fetch loop stops on it
		}
	}
	l.looked(got, time.Now())
	l.waiting.Store(false)
	select {
	case w.levelWake <- struct{}{}:
	default:
	}
}

// pull makes one pull request on level l for up to n messages, waiting up
// to FetchWait unless noWait, and reports how many it received.
func (w *Worker) pull(ctx context.Context, l *level, n int, noWait bool) (int, error) {
	return w.pullFrom(ctx, l, n, noWait, false)
}

// pullFrom is pull; with reserved, each message received takes one of
// the request's reservation against MaxTasks.
func (w *Worker) pullFrom(ctx context.Context, l *level, n int, noWait, reserved bool) (int, error) {
	var batch jetstream.MessageBatch
	var err error
	changed := w.cluster.durable.Changed() // the durable's next leader: a refused pull's retry
	if noWait {
		batch, err = l.cons.FetchNoWait(n)
	} else {
		// Bound by ctx as well as FetchWait, so that a worker that took its
		// sentinel stops at once instead of at the pull's expiry.
		fctx, cancel := context.WithTimeout(ctx, w.cfg.FetchWait)
		defer cancel()
		batch, err = l.cons.Fetch(n, jetstream.FetchContext(fctx))
	}
	if err == nil {
		got := 0
		sentinel := protocol.SentinelSubject(w.queue)
		for msg := range batch.Messages() {
			got++
			if reserved {
				w.reserved.Add(-1)
			}
			if msg.Subject() != sentinel {
				w.tasks.Add(1)
			}
			w.leases.hold(msg)
			w.inbox.put(l.rank, msg)
			// Counted once a slot may take it: what InHand counts is in
			// the inbox or running. A slot that settles it first leaves
			// the window one short for as long as this line takes.
			w.window.took(1)
		}
		if err = batch.Error(); err == nil || got > 0 {
			return got, nil
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return 0, nil // the pull expired with nothing to do
		}
	}
	if nc := w.js.Conn(); nc.IsClosed() || errors.Is(err, nats.ErrConnectionClosed) {
		return 0, link.Lost(nc)
	}
	if ctx.Err() == nil {
		level := slog.LevelWarn
		if errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, nats.ErrTimeout) {
			level = slog.LevelInfo
		}
		w.log.Log(ctx, level, "pull failed; retrying", "error", err, "priority", l.p,
			"waiting_for", "the durable's leader (LEADER_ELECTED advisory) or a reconnect", "at_most", retryPause)
		pullAgain(ctx, changed)
	}
	return 0, nil
}
