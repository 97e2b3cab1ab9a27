package producer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/procq/procq/demo"
	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/producer"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// napRegistry has the built-ins and "nap": sleep the given milliseconds
// (honouring ctx), then return them.
func napRegistry(t *testing.T) *task.Registry {
	reg := demo.Builtins()
	task.MustRegister(reg, "nap", func(ctx context.Context, ms int) (int, error) {
		return ms, demo.Sleep(ctx, time.Duration(ms)*time.Millisecond)
	})
	return reg
}

func TestApplyAndApplyAsync(t *testing.T) {
	e := newEnv(t)
	e.workers(t, 2, 2, demo.Builtins())
	pool := producer.NewPool(e.q, producer.PoolConfig{})
	ctx := ctxT(t)

	v, err := pool.Apply(ctx, demo.KindSquare, demo.SquareArgs{X: 7})
	if err != nil || string(v) != "49" {
		t.Fatalf("Apply(square 7) = %s, %v; want 49", v, err)
	}
	_, err = pool.Apply(ctx, demo.KindSquare, demo.SquareArgs{X: 5_000_000_000})
	var te *producer.TaskError
	if !errors.As(err, &te) || te.Index != 0 || te.Kind != demo.KindSquare {
		t.Fatalf("Apply(square overflow) error %v, want a *TaskError for input 0", err)
	}

	// Many at once, from many goroutines: each handle gets its own result.
	const n = 300
	handles := make([]*producer.AsyncResult, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			h, err := pool.ApplyAsync(ctx, demo.KindSquare, demo.SquareArgs{X: int64(i)})
			if err != nil {
				t.Errorf("ApplyAsync %d: %v", i, err)
			}
			handles[i] = h
		})
	}
	wg.Wait()
	for i, h := range handles {
		if h == nil {
			continue
		}
		v, err := h.Get(ctx)
		if err != nil || string(v) != fmt.Sprint(i*i) {
			t.Errorf("handle %d: %s, %v; want %d", i, v, err, i*i)
		}
		if !h.Ready() || !h.Successful() {
			t.Errorf("handle %d: ready %v, successful %v after Get", i, h.Ready(), h.Successful())
		}
	}

	if err := pool.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Apply(ctx, demo.KindSquare, demo.SquareArgs{X: 1}); !errors.Is(err, producer.ErrPoolClosed) {
		t.Errorf("Apply after Close: %v, want ErrPoolClosed", err)
	}
	if _, err := pool.Map(ctx, demo.KindSquare, squares(3)); !errors.Is(err, producer.ErrPoolClosed) {
		t.Errorf("Map after Close: %v, want ErrPoolClosed", err)
	}
	// Consumers ack a task once its result is stored, so the last acks
	// may land just after the results do.
	waitFor(t, "no task or result message left after Close", func() bool {
		ti, err1 := e.topo.Tasks.Info(ctx)
		ri, err2 := e.topo.Results.Info(ctx)
		return err1 == nil && err2 == nil && ti.State.Msgs == 0 && ri.State.Msgs == 0
	})
}

// Close lets what was submitted finish and waits for it.
func TestPoolCloseFinishesSubmitted(t *testing.T) {
	e := newEnv(t)
	e.workers(t, 1, 1, napRegistry(t))
	pool := producer.NewPool(e.q, producer.PoolConfig{})
	ctx := ctxT(t)
	var handles []*producer.AsyncResult
	for i := range 4 {
		h, err := pool.ApplyAsync(ctx, "nap", 100+i)
		if err != nil {
			t.Fatal(err)
		}
		handles = append(handles, h)
	}
	if err := pool.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for i, h := range handles {
		if !h.Ready() {
			t.Fatalf("task %d not done when Close returned", i)
		}
		if v, err := h.Get(ctx); err != nil || string(v) != fmt.Sprint(100+i) {
			t.Errorf("task %d: %s, %v; want %d", i, v, err, 100+i)
		}
	}
}

// Terminate stops at once: waiting tasks and a running map fail, and the
// tasks not yet run are removed from the queue. (The one task a consumer
// is running finishes there, up to 2 s; its result is dropped.)
func TestPoolTerminate(t *testing.T) {
	e := newEnv(t)
	e.workers(t, 1, 1, napRegistry(t))
	pool := producer.NewPool(e.q, producer.PoolConfig{})
	ctx := ctxT(t)
	var handles []*producer.AsyncResult
	for range 5 {
		h, err := pool.ApplyAsync(ctx, "nap", 2_000)
		if err != nil {
			t.Fatal(err)
		}
		handles = append(handles, h)
	}
	mapErr := make(chan error, 1)
	go func() {
		_, err := pool.Map(ctx, "nap", []any{2_000, 2_000})
		mapErr <- err
	}()
	waitFor(t, "the 7 tasks queued", func() bool {
		info, err := e.topo.Tasks.Info(ctx)
		return err == nil && info.State.Msgs == 7
	})
	if err := pool.Terminate(ctx); err != nil {
		t.Fatal(err)
	}
	for i, h := range handles {
		if !h.Ready() || h.Successful() {
			t.Errorf("task %d: ready %v, successful %v after Terminate; want failed", i, h.Ready(), h.Successful())
		}
	}
	select {
	case err := <-mapErr:
		var ie *producer.IncompleteError
		if !errors.As(err, &ie) || len(ie.Unfinished) != 2 {
			t.Errorf("Map after Terminate: %v, want *IncompleteError with 2 unfinished", err)
		}
	case <-ctx.Done():
		t.Fatal("Map still running after Terminate returned")
	}
	info, err := e.topo.Tasks.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("%d task messages left after Terminate, want 0", info.State.Msgs)
	}
}

// waitFor polls cond every 20 ms for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// A session whose map fails (here: the queue is full and no consumer
// takes anything) fails every task waiting in it, rather than leaving them
// waiting for ever.
func TestApplySessionFailureReleasesWaiters(t *testing.T) {
	b := natstest.Start(t)
	js := b.JetStream(t)
	topo, err := protocol.EnsureQueue(context.Background(), js, protocol.QueueConfig{Name: "full", MaxMessages: 1})
	if err != nil {
		t.Fatal(err)
	}
	q := producer.NewTaskQueue("full", js, topo, nil)
	q.PutTimeout = 300 * time.Millisecond
	pool := producer.NewPool(q, producer.PoolConfig{})
	defer func() { _ = pool.Terminate(context.Background()) }()
	ctx := ctxT(t)
	var handles []*producer.AsyncResult
	for i := range 3 {
		h, err := pool.ApplyAsync(ctx, demo.KindSquare, demo.SquareArgs{X: int64(i)})
		if err != nil {
			t.Fatal(err)
		}
		handles = append(handles, h)
	}
	for i, h := range handles {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, err := h.Get(wctx)
		cancel()
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("task %d: %v, want the failed session's error, not a wait", i, err)
		}
	}
}

// When every session ends at once (its map cannot start: here the watch
// says no consumer is left), ApplyAsync returns that error instead of
// starting sessions until the caller's context ends.
func TestApplyAsyncReturnsTheSessionsError(t *testing.T) {
	e := newEnv(t)
	pool := producer.NewPool(e.q, producer.PoolConfig{IdleTimeout: time.Millisecond}) // no consumer runs
	defer func() { _ = pool.Terminate(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h, err := pool.ApplyAsync(ctx, demo.KindSquare, demo.SquareArgs{X: 2})
	if err == nil {
		_, err = h.Get(ctx)
	}
	if !errors.Is(err, producer.ErrNoConsumers) {
		t.Fatalf("ApplyAsync on a pool whose maps cannot run: %v, want ErrNoConsumers", err)
	}
}

// A pool's consumer watch runs per map: a pool left idle longer than the
// idle timeout still maps once consumers are there.
func TestPoolWatchIsPerMap(t *testing.T) {
	e := newEnv(t)
	pool := producer.NewPool(e.q, producer.PoolConfig{IdleTimeout: 300 * time.Millisecond})
	ctx := ctxT(t)
	// No consumer yet: a map fails with ErrNoConsumers.
	if _, err := pool.Map(ctx, demo.KindSquare, squares(2)); !errors.Is(err, producer.ErrNoConsumers) {
		t.Fatalf("map without consumers: %v, want ErrNoConsumers", err)
	}
	time.Sleep(600 * time.Millisecond) // idle past the timeout, with no map running
	e.workers(t, 1, 1, demo.Builtins())
	rs, err := pool.Map(ctx, demo.KindSquare, squares(3))
	if err != nil || len(rs) != 3 || string(rs[2].Value) != "9" {
		t.Fatalf("map once a consumer is there: %v, %v", rs, err)
	}
}
