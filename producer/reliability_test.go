package producer_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/procq/procq/demo"
	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/producer"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

func msgsIn(t *testing.T, e *env) uint64 {
	t.Helper()
	info, err := e.topo.Tasks.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// A full queue pushes back: Put waits for room while a consumer drains it,
// and fails with *FullError after PutTimeout when nobody does, dropping
// nothing that was queued.
func TestPutWaitsForRoom(t *testing.T) {
	b := natstest.Start(t)
	js := b.JetStream(t)
	topo, err := protocol.EnsureQueue(context.Background(), js, protocol.QueueConfig{Name: "full", MaxMessages: 5})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{js: js, topo: topo, q: producer.NewTaskQueue("full", js, topo, nil)}
	e.q.PutTimeout = 300 * time.Millisecond
	ctx := ctxT(t)
	for i := range 5 {
		if err := e.q.Put(ctx, "r1", i, demo.KindSquare, demo.SquareArgs{X: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	err = e.q.Put(ctx, "r1", 5, demo.KindSquare, demo.SquareArgs{X: 5})
	var fe *producer.FullError
	if !errors.As(err, &fe) {
		t.Fatalf("put into a full queue: err %v, want *FullError", err)
	}
	if n := msgsIn(t, e); n != 5 {
		t.Errorf("%d tasks queued after the refused put, want 5 (nothing dropped)", n)
	}

	var ran atomic.Int32
	reg := task.NewRegistry()
	if err := reg.Register(demo.KindSquare, task.HandlerFunc(func(ctx context.Context, _ json.RawMessage) (json.RawMessage, error) {
		ran.Add(1)
		return nil, demo.Sleep(ctx, 5*time.Millisecond)
	})); err != nil {
		t.Fatal(err)
	}
	e.workers(t, 1, 1, reg)
	e.q.PutTimeout = 30 * time.Second
	for i := 5; i < 40; i++ {
		if err := e.q.Put(ctx, "r1", i, demo.KindSquare, demo.SquareArgs{X: int64(i)}); err != nil {
			t.Fatalf("put #%d with a consumer draining the queue: %v", i, err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for ran.Load() < 40 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := ran.Load(); n != 40 {
		t.Errorf("%d tasks ran, want 40", n)
	}
}

// A map with no consumer at all fails within the idle timeout with an
// *IncompleteError naming every input, instead of waiting for ever.
func TestMapFailsWithoutConsumers(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	r, err := producer.Begin(ctx, e.q, producer.RunConfig{Consumers: 1, IdleTimeout: time.Second, CheckEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := r.Watch(ctx)
	defer stop()
	_, err = producer.NewPool(e.q, producer.PoolConfig{ChunkSize: 1, Run: r}).Map(wctx, demo.KindSquare, squares(4))
	var ie *producer.IncompleteError
	if !errors.As(err, &ie) || !errors.Is(err, producer.ErrNoConsumers) {
		t.Fatalf("err %v, want *IncompleteError wrapping ErrNoConsumers", err)
	}
	if !slices.Equal(ie.Unfinished, []int{0, 1, 2, 3}) {
		t.Errorf("Unfinished %v, want 0-3", ie.Unfinished)
	}
	if !strings.Contains(err.Error(), "no live consumer on queue pool for") {
		t.Errorf("error %q does not say what was missing", err)
	}
	if n := msgsIn(t, e); n != 0 {
		t.Errorf("%d tasks left after the failed map, want 0", n)
	}
}

// A panic in the loop body of Imap unwinds through the map: its goroutines
// stop (goleak checks in TestMain) and its queued tasks are removed.
func TestImapPanicCleansUp(t *testing.T) {
	e := newEnv(t)
	reg := task.NewRegistry()
	if err := reg.Register(demo.KindSquare, task.HandlerFunc(func(ctx context.Context, _ json.RawMessage) (json.RawMessage, error) {
		return json.RawMessage("1"), demo.Sleep(ctx, 50*time.Millisecond)
	})); err != nil {
		t.Fatal(err)
	}
	e.workers(t, 1, 1, reg)
	ctx := ctxT(t)
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Errorf("recovered %v, want boom", v)
			}
		}()
		pool := producer.NewPool(e.q, producer.PoolConfig{Window: 8})
		for range pool.Imap(ctx, demo.KindSquare, slices.Values(squares(20))) {
			panic("boom")
		}
	}()
	if n := msgsIn(t, e); n != 0 {
		t.Errorf("%d tasks left after a panic in the loop body, want 0", n)
	}
}

// Integers beyond 2^53 pass through the Go API unchanged, as arguments and
// as results.
func TestMapBigIntegersPassThrough(t *testing.T) {
	e := newEnv(t)
	reg := task.NewRegistry()
	if err := reg.Register("echo", task.HandlerFunc(func(_ context.Context, raw json.RawMessage) (json.RawMessage, error) {
		return raw, nil
	})); err != nil {
		t.Fatal(err)
	}
	e.workers(t, 1, 1, reg)
	in := []any{json.Number("9007199254740993"), int64(9223372036854775807), json.Number("-9223372036854775808"), json.Number("123456789012345678901234567890")}
	res, err := producer.NewPool(e.q, producer.PoolConfig{ChunkSize: 2}).Map(ctxT(t), "echo", in)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"9007199254740993", "9223372036854775807", "-9223372036854775808", "123456789012345678901234567890"}
	if got := values(t, res); !slices.Equal(got, want) {
		t.Errorf("results %v, want %v", got, want)
	}
}
