package procq_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/procq/procq"
	"github.com/procq/procq/task"
)

// gates serves "gate" in this process: an input runs until its gate is
// opened or its context ends, and records how it ended; "stubborn"
// ignores its context and returns only when its gate opens.
type gates struct {
	mu      sync.Mutex
	open    map[string]chan struct{}
	started map[string]int
	ended   map[string]error // the context's cause when it ended early
	endedAt map[string]time.Time
}

func (g *gates) gate(id string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open[id] == nil {
		g.open[id] = make(chan struct{})
	}
	return g.open[id]
}

func (g *gates) starts(id string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.started[id]
}

func (g *gates) end(id string) (error, time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	err, ok := g.ended[id]
	return err, g.endedAt[id], ok
}

// gateWorker runs a worker of the client's queue serving "gate" and
// "stubborn" until the test ends; its Run's error comes on the channel.
func gateWorker(t *testing.T, c *procq.Client, name string) (*gates, <-chan error) {
	t.Helper()
	g := &gates{open: map[string]chan struct{}{}, started: map[string]int{}, ended: map[string]error{}, endedAt: map[string]time.Time{}}
	reg := task.NewRegistry()
	task.MustRegister(reg, "gate", func(ctx context.Context, id string) (string, error) {
		open := g.gate(id)
		g.mu.Lock()
		g.started[id]++
		g.mu.Unlock()
		select {
		case <-open:
			return id, nil
		case <-ctx.Done():
			g.mu.Lock()
			g.ended[id], g.endedAt[id] = context.Cause(ctx), time.Now()
			g.mu.Unlock()
			return "", ctx.Err()
		}
	})
	task.MustRegister(reg, "stubborn", func(ctx context.Context, id string) (string, error) {
		open := g.gate(id)
		g.mu.Lock()
		g.started[id]++
		g.mu.Unlock()
		<-open
		return id, nil
	})
	w, err := c.Worker(reg, procq.WorkerName(name))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		g.mu.Lock()
		for _, ch := range g.open {
			select {
			case <-ch:
			default:
				close(ch)
			}
		}
		g.mu.Unlock()
	})
	return g, done
}

// Cancelling a running, a queued and a delayed task each ends with
// ErrCancelled; the running handler's context is cancelled at once, the
// queued and the delayed tasks never run, and the other tasks are not
// disturbed. Cancel by id reaches the map's producer; an unknown id and a
// finished task are said so.
func TestCancelOneTask(t *testing.T) {
	c := connect(t, "cancelone")
	ctx := ctxT(t)
	g, _ := gateWorker(t, c, "C-1") // one slot: what comes after the gate waits
	p, err := c.Pool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)

	running, err := procq.ApplyAsync[string, string](ctx, p, "gate", "running")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the first task starts", func() bool { return g.starts("running") == 1 })
	queued, err := procq.ApplyAsync[string, string](ctx, p, "gate", "queued")
	if err != nil {
		t.Fatal(err)
	}
	other, err := procq.ApplyAsync[string, string](ctx, p, "gate", "other")
	if err != nil {
		t.Fatal(err)
	}
	later, err := procq.ApplyAsync[string, string](ctx, p, "gate", "later", procq.In(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	submitted, err := p.Submit(ctx, "gate", "submitted") // answered to nobody
	if err != nil {
		t.Fatal(err)
	}
	after, err := procq.ApplyAsync[string, string](ctx, p, "gate", "after")
	if err != nil {
		t.Fatal(err)
	}
	close(g.gate("other"))
	close(g.gate("after"))
	if err := c.CancelTask(ctx, submitted.ID()); err != nil {
		t.Fatalf("CancelTask(%s) of a submitted task: %v", submitted.ID(), err)
	}

	// Queued, by its id as "broker task cancel" does.
	if err := c.CancelTask(ctx, queued.ID()); err != nil {
		t.Fatalf("CancelTask(%s): %v", queued.ID(), err)
	}
	if _, err := queued.Get(ctx); !errors.Is(err, procq.ErrCancelled) {
		t.Fatalf("queued task: Get = %v, want ErrCancelled", err)
	}
	// Running: its handler's context ends with the cancel.
	asked := time.Now()
	if err := running.Cancel(ctx); err != nil {
		t.Fatalf("Cancel of the running task: %v", err)
	}
	if _, err := running.Get(ctx); !errors.Is(err, procq.ErrCancelled) {
		t.Fatalf("running task: Get = %v, want ErrCancelled", err)
	}
	waitFor(t, 10*time.Second, "the running handler's context is cancelled", func() bool {
		_, _, ok := g.end("running")
		return ok
	})
	if cause, at, _ := g.end("running"); cause == nil || cause.Error() != "task cancelled" || at.Before(asked) {
		t.Errorf("running handler ended with cause %v at %v (cancel asked at %v), want \"task cancelled\" after it", cause, at, asked)
	}
	if err := later.Cancel(ctx); err != nil {
		t.Fatalf("Cancel of the delayed task: %v", err)
	}
	if _, err := later.Get(ctx); !errors.Is(err, procq.ErrCancelled) {
		t.Fatalf("delayed task: Get = %v, want ErrCancelled", err)
	}
	if got, err := other.Get(ctx); err != nil || got != "other" {
		t.Fatalf("other task: Get = %q, %v; want other", got, err)
	}
	if got, err := after.Get(ctx); err != nil || got != "after" {
		t.Fatalf("the task after the submitted one: Get = %q, %v; want after", got, err)
	}
	if n := g.starts("submitted"); n != 0 {
		t.Errorf("the cancelled submitted task ran %d times, want 0", n)
	}
	if n := g.starts("queued"); n != 0 {
		t.Errorf("the cancelled queued task ran %d times, want 0", n)
	}
	if n := g.starts("later"); n != 0 {
		t.Errorf("the cancelled delayed task ran %d times, want 0", n)
	}
	if n := g.starts("running"); n != 1 {
		t.Errorf("the cancelled running task started %d times, want 1", n)
	}
	// Again, finished, unknown.
	if err := queued.Cancel(ctx); err != nil {
		t.Errorf("second Cancel: %v, want nil", err)
	}
	if err := c.CancelTask(ctx, other.ID()); !errors.Is(err, procq.ErrFinished) {
		t.Errorf("CancelTask of a finished task: %v, want ErrFinished", err)
	}
	for _, id := range []string{"nosuchtask", "nosuchmap.3", "a b"} {
		if err := c.CancelTask(ctx, id); !errors.Is(err, procq.ErrNoSuchTask) {
			t.Errorf("CancelTask(%q): %v, want ErrNoSuchTask", id, err)
		}
	}
}

// MapResult.Cancel cancels one input of a running map: its error is
// ErrCancelled, every other input has its exact result.
func TestCancelMapInput(t *testing.T) {
	c := connect(t, "cancelmap")
	ctx := ctxT(t)
	g, _ := gateWorker(t, c, "C-1")
	p, err := c.Pool(ctx, procq.ChunkSize(1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	for _, id := range []string{"m0", "m2", "m3"} {
		close(g.gate(id))
	}
	m := procq.MapAsync[string, string](ctx, p, "gate", []string{"m0", "m1", "m2", "m3"}, nil, nil)
	waitFor(t, 10*time.Second, "input #1 runs", func() bool { return g.starts("m1") == 1 })
	if err := m.Cancel(ctx, 9); !errors.Is(err, procq.ErrNoSuchTask) {
		t.Errorf("Cancel(9) of a 4-input map: %v, want ErrNoSuchTask", err)
	}
	if err := m.Cancel(ctx, 1); err != nil {
		t.Fatalf("Cancel(1): %v", err)
	}
	out, err := m.Get(ctx)
	var me *procq.MapError
	if !errors.As(err, &me) || len(me.Failed) != 1 || !errors.Is(me.Failed[0], procq.ErrCancelled) {
		t.Fatalf("map error %v, want one failure, ErrCancelled", err)
	}
	if want := []string{"m0", "", "m2", "m3"}; len(out) != 4 || out[0] != want[0] || out[1] != "" || out[2] != want[2] || out[3] != want[3] {
		t.Fatalf("map results %q, want %q", out, want)
	}
	if err := m.Cancel(ctx, 2); !errors.Is(err, procq.ErrFinished) {
		t.Errorf("Cancel after the map ended: %v, want ErrFinished", err)
	}

	// At once after the call: before the map or the task has sent a thing.
	close(g.gate("n0"))
	early := procq.MapAsync[string, string](ctx, p, "gate", []string{"n0", "n1"}, nil, nil)
	if err := early.Cancel(ctx, 1); err != nil {
		t.Fatalf("Cancel at once after MapAsync: %v", err)
	}
	out, err = early.Get(ctx)
	if !errors.As(err, &me) || len(me.Failed) != 1 || !errors.Is(me.Failed[0], procq.ErrCancelled) || out[0] != "n0" {
		t.Fatalf("map cancelled at once: %q, %v; want n0 and one failure, ErrCancelled", out, err)
	}
	a, err := procq.ApplyAsync[string, string](ctx, p, "gate", "a1", procq.Timeout(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Cancel(ctx); err != nil {
		t.Fatalf("Cancel at once after ApplyAsync with a time limit: %v", err)
	}
	if _, err := a.Get(ctx); !errors.Is(err, procq.ErrCancelled) {
		t.Fatalf("Get = %v, want ErrCancelled", err)
	}
}

// A handler past its time limit has its context cancelled (soft); one
// that ignores it is abandoned a grace later (hard): its task fails with
// "time limit exceeded after ...", and the worker's Run ends with
// ErrTimeLimit once the rest is settled.
func TestTimeLimit(t *testing.T) {
	t.Setenv("PROCQ_CONSUMERS_HARD_TIMEOUT_GRACE", "300ms")
	c := connect(t, "timelimit")
	ctx := ctxT(t)
	g, runErr := gateWorker(t, c, "C-1")
	p, err := c.Pool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	for _, d := range []time.Duration{0, -time.Second, 25 * time.Hour, math.MaxInt64} {
		if _, err := procq.ApplyAsync[string, string](ctx, p, "gate", "x", procq.Timeout(d)); err == nil {
			t.Errorf("procq.Timeout(%v) accepted, want an error", d)
		}
	}
	soft, err := procq.ApplyAsync[string, string](ctx, p, "gate", "soft", procq.Timeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := soft.Get(ctx); err == nil || err.Error() != "gate #0: time limit exceeded after 200ms" {
		t.Fatalf("soft limit: Get = %v, want gate #0: time limit exceeded after 200ms", err)
	}
	if cause, _, _ := g.end("soft"); cause == nil || cause.Error() != "time limit" {
		t.Errorf("soft: the handler's context ended with %v, want the time limit", cause)
	}
	hard, err := procq.ApplyAsync[string, string](ctx, p, "stubborn", "hard", procq.Timeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hard.Get(ctx); err == nil || err.Error() != "stubborn #0: time limit exceeded after 200ms" {
		t.Fatalf("hard limit: Get = %v, want stubborn #0: time limit exceeded after 200ms", err)
	}
	select {
	case err := <-runErr:
		if !errors.Is(err, procq.ErrTimeLimit) {
			t.Fatalf("worker Run = %v, want ErrTimeLimit", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not stop within 30s of abandoning a handler")
	}
}
