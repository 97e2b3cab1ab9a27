package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/protocol"
)

// Control over each task: a task marked cancelled does not run, and one
// running has its handler's context cancelled; a task has a time limit
// (soft: its context is cancelled; hard, a grace later: it is abandoned
// and the process exits).

// DefaultHardTimeoutGrace is how long a handler may run on after its
// time limit before it is abandoned.
const DefaultHardTimeoutGrace = 5 * time.Second

var (
	// errCancelled is the cause of a cancelled task's context.
	errCancelled = errors.New(protocol.CancelledText)
	// errSoftLimit is the cause of the context of a task at its time limit.
	errSoftLimit = errors.New("time limit")
)

// cancels is what the worker knows of the queue's cancel marks, from a
// watch of CancelBucket, and the tasks it runs that a mark would stop.
type cancels struct {
	queue string
	log   *slog.Logger

	marks   atomic.Int64 // len(ids), read without the lock on every task
	mu      sync.Mutex
	ids     map[string]time.Time // when each mark was heard of
	swept   time.Time            // when marks past CancelKeep were last forgotten
	running map[string]context.CancelCauseFunc
}

func newCancels(queue string, log *slog.Logger) *cancels {
	return &cancels{queue: queue, log: log, ids: map[string]time.Time{}, running: map[string]context.CancelCauseFunc{}}
}

// has reports whether task id is marked cancelled.
func (c *cancels) has(id string) bool {
	if c == nil || c.marks.Load() == 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.ids[protocol.KeyToken(id)]
	return ok
}

// run records that task id runs, cancelled by cancel when a mark comes;
// the function it returns forgets it.
func (c *cancels) run(id string, cancel context.CancelCauseFunc) func() {
	id = protocol.KeyToken(id) // as the marks name it
	c.mu.Lock()
	c.running[id] = cancel
	if _, ok := c.ids[id]; ok {
		cancel(errCancelled) // marked since the worker looked
	}
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(c.running, id)
		c.mu.Unlock()
	}
}

// mark records a cancel mark and stops the task if it runs here.
func (c *cancels) mark(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if _, ok := c.ids[id]; !ok {
		c.ids[id] = now
		c.marks.Add(1)
	}
	if now.Sub(c.swept) > time.Hour {
		// The bucket forgets a mark after CancelKeep, without a word to
		// its watchers: so does this worker, or its set would only grow.
		c.swept = now
		for k, at := range c.ids {
			if now.Sub(at) > protocol.CancelKeep {
				delete(c.ids, k)
				c.marks.Add(-1)
			}
		}
	}
	if cancel := c.running[id]; cancel != nil {
		c.log.Info("cancelling a running task", "task_id", id)
		cancel(errCancelled)
	}
}

// watch follows the queue's cancel marks until ctx ends. It returns once
// the marks there were at its start are known (or after watchSync, said
// in the log), so that the worker takes no task before it knows whether
// it was cancelled; the watch goes on in the background.
func (c *cancels) watch(ctx context.Context, kv jetstream.KeyValue, wg *sync.WaitGroup) {
	prefix := c.queue + "."
	synced := make(chan struct{})
	wg.Go(func() {
		var once sync.Once
		defer once.Do(func() { close(synced) })
		for ctx.Err() == nil {
			w, err := kv.Watch(ctx, prefix+">", jetstream.IgnoreDeletes())
			if err != nil {
				c.log.Warn("cancel marks not watched; trying again", "error", err, "waiting_for", "the broker")
				select {
				case <-time.After(time.Second):
				case <-ctx.Done():
				}
				continue
			}
			for e := range w.Updates() {
				if e == nil {
					once.Do(func() { close(synced) })
					continue
				}
				// A mark stays until it expires (CancelKeep): a task
				// cancelled stays cancelled.
				c.mark(strings.TrimPrefix(e.Key(), prefix))
			}
			_ = w.Stop()
		}
	})
	t := time.NewTimer(watchSync)
	defer t.Stop()
	select {
	case <-synced:
	case <-t.C:
		c.log.Warn("cancel marks not read yet; taking tasks meanwhile", "waited", watchSync,
			"waiting_for", "the broker's "+protocol.CancelBucket+" bucket")
	case <-ctx.Done():
	}
}

// watchSync bounds the wait for the cancel marks at the worker's start.
const watchSync = 5 * time.Second

// limitOf is the time limit of j: its own (Procq-Timeout), else the
// worker's; 0 is none. A bad header is a reason never to run it.
func (w *Worker) limitOf(j *job) (time.Duration, string) {
	v := j.msg.Headers().Get(protocol.HeaderTimeout)
	if v == "" {
		return w.cfg.TaskTimeout, ""
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > protocol.MaxTimeout {
		return 0, fmt.Sprintf("bad %s header %q: want a positive duration such as 30s, at most %v", protocol.HeaderTimeout, v, protocol.MaxTimeout)
	}
	return d, ""
}

// ending is how a guarded call ended.
type ending int

const (
	returned  ending = iota // the handler returned
	cancelled               // returned after its task was cancelled
	timedOut                // returned after its time limit (soft)
	abandoned               // still running a grace after its limit (hard)
)

// guard runs fn, one handler call, under the task's controls: track, when
// not "", is the task id a cancel mark stops; limit, when above 0, the
// time limit. Without either fn runs as is.
func (w *Worker) guard(ctx context.Context, track string, limit time.Duration, fn func(context.Context)) ending {
	if track == "" && limit <= 0 {
		fn(ctx)
		return returned
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if track != "" {
		defer w.cancels.run(track, cancel)()
	}
	if limit <= 0 {
		fn(ctx)
		return endingOf(ctx)
	}
	ctx, stop := context.WithTimeoutCause(ctx, limit, errSoftLimit)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ctx)
	}()
	hard := time.NewTimer(min(limit, math.MaxInt64-w.cfg.HardTimeoutGrace) + w.cfg.HardTimeoutGrace)
	defer hard.Stop()
	select {
	case <-done:
		return endingOf(ctx)
	case <-hard.C:
		return abandoned
	}
}

func endingOf(ctx context.Context) ending {
	switch context.Cause(ctx) {
	case errCancelled:
		return cancelled
	case errSoftLimit:
		return timedOut
	}
	return returned
}

// limitText is the error of a task stopped at its time limit.
func limitText(limit time.Duration) string {
	return "time limit exceeded after " + limit.String()
}

// count adds one to a counter of the queue; a count not stored is logged.
func (w *Worker) count(ctx context.Context, what string) {
	if w.topo.Counts == nil {
		return
	}
	if err := protocol.Increment(context.WithoutCancel(ctx), w.js, what, w.queue); err != nil {
		w.log.WarnContext(ctx, "counter not stored", "counter", what, "error", err)
	}
}
