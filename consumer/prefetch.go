package consumer

import (
	"cmp"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// aheadTarget is how much work an adaptive worker holds beyond what it
// runs: enough that a pull's round trip hides behind the work in hand.
const aheadTarget = 15 * time.Millisecond

// DefaultMaxPrefetch caps adaptive prefetch.
const DefaultMaxPrefetch = 256

// window decides how many messages a worker may hold at once (running or
// waiting for a slot), and counts how many it holds.
//
// Pinned (Config.Prefetch > 0) it is fixed. Adaptive (Config.Prefetch 0,
// the default) it follows the recent task durations: a worker holds about
// aheadTarget of work per slot beyond its running tasks, between
// Concurrency and max. Tasks of a second keep it at Concurrency, so two
// long tasks run on two consumers at once; tasks of 50µs take it to the
// cap, so a pull's round trip is paid once per hundreds of tasks. Until a
// task has been measured, and again whenever the queue ran dry, it is
// Concurrency.
type window struct {
	slots, max int
	pinned     bool

	held  atomic.Int64  // messages received and not yet settled
	limit atomic.Int64  // how many may be held
	peak  atomic.Int64  // the largest limit so far
	wake  chan struct{} // a message was settled, or the limit grew

	mu   sync.Mutex
	mean float64 // moving average of task durations, seconds; 0 until measured
}

func newWindow(cfg Config, maxAckPending int) *window {
	w := &window{slots: cfg.Concurrency, wake: make(chan struct{}, 1)}
	switch {
	case cfg.Prefetch > 0:
		w.pinned, w.max = true, max(cfg.Prefetch, cfg.Concurrency)
	default:
		w.max = cmp.Or(cfg.MaxPrefetch, DefaultMaxPrefetch)
		if maxAckPending > 0 { // -1: the consumer sets no limit
			w.max = min(w.max, maxAckPending)
		}
		w.max = max(w.max, cfg.Concurrency)
	}
	if w.pinned {
		w.limit.Store(int64(w.max))
	} else {
		w.limit.Store(int64(w.slots))
	}
	w.peak.Store(w.limit.Load())
	return w
}

// Limit is how many messages may be held now.
func (w *window) Limit() int { return int(w.limit.Load()) }

// room is how many more messages may be held now: none, never fewer,
// when the limit fell below what is held (tasks got longer, or the queue
// ran dry), until enough are settled.
func (w *window) room() int { return max(int(w.limit.Load()-w.held.Load()), 0) }

// took counts n messages received.
func (w *window) took(n int) { w.held.Add(int64(n)) }

// settled counts one message settled after d of work (0: not run, such as
// a message handed back on stop), adapts the limit, and wakes the fetcher.
func (w *window) settled(d time.Duration) {
	w.held.Add(-1)
	if d > 0 && !w.pinned {
		w.observe(d)
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// observe folds one task duration into the average and sets the limit.
func (w *window) observe(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	const alpha = 0.1
	s := d.Seconds()
	if w.mean == 0 {
		w.mean = s
	} else {
		w.mean += alpha * (s - w.mean)
	}
	ahead := float64(w.slots) * aheadTarget.Seconds() / w.mean
	limit := int64(min(max(w.slots+int(math.Min(ahead, float64(w.max))), w.slots), w.max))
	w.limit.Store(limit)
	if limit > w.peak.Load() {
		w.peak.Store(limit)
	}
}

// idle forgets the measured durations when the queue ran dry: the next
// tasks may be of another kind, and until one is measured the worker holds
// no more than its slots, so that a batch of long tasks spreads over the
// consumers however short the last ones were.
func (w *window) idle() {
	if w.pinned {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.mean = 0
	w.limit.Store(int64(w.slots))
}
