package producer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/procq/procq/consumer"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/producer"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, natstest.LeakOptions()...)
}

type env struct {
	js   jetstream.JetStream
	topo *protocol.Topology
	q    *producer.TaskQueue
}

func newEnv(t testing.TB) *env {
	t.Helper()
	b := natstest.Start(t)
	js := b.JetStream(t)
	topo, err := protocol.EnsureQueue(context.Background(), js, protocol.QueueConfig{Name: "pool", AckWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &env{js: js, topo: topo, q: producer.NewTaskQueue("pool", js, topo, nil)}
}

// workers runs n in-process consumer workers with reg until the test ends.
func (e *env) workers(t testing.TB, n, concurrency int, reg *task.Registry) {
	e.workersPrefetch(t, n, concurrency, 0, reg)
}

func (e *env) workersPrefetch(t testing.TB, n, concurrency, prefetch int, reg *task.Registry) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range n {
		w, err := consumer.New(consumer.Config{Name: fmt.Sprintf("W-%d", i+1), Concurrency: concurrency,
			Prefetch: prefetch, FetchWait: time.Second}, e.js, e.topo, reg, nil)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if err := w.Run(ctx); err != nil {
				t.Errorf("worker: %v", err)
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func values(t *testing.T, rs []producer.Result) []string {
	t.Helper()
	out := make([]string, len(rs))
	for i, r := range rs {
		if r.Index != i {
			t.Fatalf("result %d has index %d", i, r.Index)
		}
		if r.Err != nil {
			out[i] = "error"
			continue
		}
		out[i] = string(r.Value)
	}
	return out
}

func TestMapSeedInputsExactInOrder(t *testing.T) {
	e := newEnv(t)
	e.workers(t, 2, 1, demo.Builtins())
	inputs := []int64{50000000, 50000001, 50000002, 50000003, 49999999}
	args := make([]any, len(inputs))
	for i, n := range inputs {
		args[i] = demo.SumSquaresArgs{N: n}
	}
	rs, err := producer.NewPool(e.q, producer.PoolConfig{Workers: 2}).Map(ctxT(t), demo.KindSumSquares, args)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`"41666665416666675000000"`, `"41666667916666675000000"`, `"41666670416666775000001"`,
		`"41666672916666975000005"`, `"41666662916666774999999"`,
	}
	if got := values(t, rs); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func squares(n int) []any {
	args := make([]any, n)
	for i := range args {
		args[i] = demo.SquareArgs{X: int64(i + 1)}
	}
	return args
}

// Every chunk size, automatic included, gives identical results; one
// failing input gives an error for its index only.
func TestMapChunkSizesAndPerItemErrors(t *testing.T) {
	e := newEnv(t)
	e.workers(t, 2, 2, demo.Builtins())
	args := squares(25)
	args[6] = demo.SquareArgs{X: 5_000_000_000} // overflows: an error for index 6
	var want []string
	for i := range 25 {
		want = append(want, fmt.Sprint((i+1)*(i+1)))
	}
	want[6] = "error"
	for _, chunk := range []int{0, 1, 2, 3, 7, 25, 100} {
		t.Run(fmt.Sprintf("chunk=%d", chunk), func(t *testing.T) {
			rs, err := producer.NewPool(e.q, producer.PoolConfig{ChunkSize: chunk, Workers: 2}).Map(ctxT(t), demo.KindSquare, args)
			if err != nil {
				t.Fatal(err)
			}
			if got := values(t, rs); !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
			var te *producer.TaskError
			if !errors.As(rs[6].Err, &te) || te.Index != 6 || te.Kind != demo.KindSquare {
				t.Errorf("index 6: err %v, want a *TaskError for square #6", rs[6].Err)
			}
		})
	}
}

func TestAutoChunk(t *testing.T) {
	tests := []struct{ n, workers, want int }{
		{0, 2, 1}, {5, 2, 1}, {8, 2, 1}, {9, 2, 2}, {100_000, 2, 10_000}, {40_000, 2, 5000}, {1000, 4, 63},
	}
	for _, tt := range tests {
		if got := producer.AutoChunk(tt.n, tt.workers); got != tt.want {
			t.Errorf("AutoChunk(%d, %d) = %d, want %d", tt.n, tt.workers, got, tt.want)
		}
	}
}

// slowFirst makes early inputs finish last, so completion order is the
// reverse of input order.
func slowFirst() *task.Registry {
	reg := task.NewRegistry()
	_ = reg.Register("slowfirst", task.HandlerFunc(func(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
		var i int
		if err := json.Unmarshal(raw, &i); err != nil {
			return nil, err
		}
		select {
		case <-time.After(time.Duration(8-i) * 40 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return json.Marshal(i * 10)
	}))
	return reg
}

func TestImapYieldsInInputOrder(t *testing.T) {
	e := newEnv(t)
	e.workers(t, 2, 4, slowFirst())
	var got []int
	pool := producer.NewPool(e.q, producer.PoolConfig{})
	for r, err := range pool.Imap(ctxT(t), "slowfirst", slices.Values([]any{0, 1, 2, 3, 4, 5, 6, 7})) {
		if err != nil {
			t.Fatal(err)
		}
		if string(r.Value) != fmt.Sprint(r.Index*10) {
			t.Errorf("index %d value %s", r.Index, r.Value)
		}
		got = append(got, r.Index)
	}
	if !slices.Equal(got, []int{0, 1, 2, 3, 4, 5, 6, 7}) {
		t.Errorf("Imap order %v, want 0..7", got)
	}
}

func TestImapUnorderedYieldsAllAsCompleted(t *testing.T) {
	e := newEnv(t)
	e.workers(t, 2, 4, slowFirst())
	var got []int
	pool := producer.NewPool(e.q, producer.PoolConfig{})
	for r, err := range pool.ImapUnordered(ctxT(t), "slowfirst", slices.Values([]any{0, 1, 2, 3, 4, 5, 6, 7})) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.Index)
	}
	if len(got) != 8 {
		t.Fatalf("got %d results, want 8", len(got))
	}
	if got[0] == 0 {
		t.Errorf("first completed was index 0, the slowest: results not yielded as completed (%v)", got)
	}
	slices.Sort(got)
	if !slices.Equal(got, []int{0, 1, 2, 3, 4, 5, 6, 7}) {
		t.Errorf("ImapUnordered yielded %v, want each of 0..7 once", got)
	}
}

// With no consumer running, a deadline stops the map, names every
// unfinished input and removes its tasks and results from the broker.
func TestMapDeadlineNamesUnfinished(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := producer.NewPool(e.q, producer.PoolConfig{ChunkSize: 2, Window: 2}).Map(ctx, demo.KindSquare, squares(7))
	var ie *producer.IncompleteError
	if !errors.As(err, &ie) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want *IncompleteError wrapping DeadlineExceeded", err)
	}
	if !slices.Equal(ie.Unfinished, []int{0, 1, 2, 3, 4, 5, 6}) {
		t.Errorf("Unfinished %v, want 0..6", ie.Unfinished)
	}
	info, err := e.topo.Tasks.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("%d task messages left after the cancelled map, want 0", info.State.Msgs)
	}
}

// Breaking out of Imap cancels the map and leaks nothing.
func TestImapBreak(t *testing.T) {
	e := newEnv(t)
	e.workers(t, 1, 1, demo.Builtins())
	n := 0
	for _, err := range producer.NewPool(e.q, producer.PoolConfig{}).Imap(ctxT(t), demo.KindSquare, slices.Values(squares(50))) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
	if n != 3 {
		t.Errorf("got %d results before break, want 3", n)
	}
}

// The window bounds the tasks in flight: with 8 worker slots and a window of
// 3, never more than 3 tasks run at once (with the default window, 8 do).
func TestWindowBoundsInFlight(t *testing.T) {
	e := newEnv(t)
	var active, maxActive atomic.Int64
	reg := task.NewRegistry()
	_ = reg.Register("probe", task.HandlerFunc(func(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
		n := active.Add(1)
		defer active.Add(-1)
		for {
			m := maxActive.Load()
			if n <= m || maxActive.CompareAndSwap(m, n) {
				break
			}
		}
		return raw, demo.Sleep(ctx, 10*time.Millisecond)
	}))
	e.workers(t, 2, 4, reg)
	args := make([]any, 60)
	for i := range args {
		args[i] = i
	}
	count := 0
	for _, err := range producer.NewPool(e.q, producer.PoolConfig{Window: 3}).ImapUnordered(ctxT(t), "probe", slices.Values(args)) {
		if err != nil {
			t.Fatal(err)
		}
		count++
	}
	if count != 60 {
		t.Errorf("got %d results, want 60", count)
	}
	if m := maxActive.Load(); m > 3 || m < 1 {
		t.Errorf("up to %d tasks ran at once, want at most the window, 3", m)
	}
}

// A kind no consumer knows gives every input an error; the map completes
// instead of waiting for results that never come, and the tasks are
// dead-lettered.
func TestMapUnknownKindCompletesWithErrors(t *testing.T) {
	e := newEnv(t)
	e.workers(t, 1, 1, demo.Builtins())
	rs, err := producer.NewPool(e.q, producer.PoolConfig{ChunkSize: 2}).Map(ctxT(t), "nope", []any{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 {
		t.Fatalf("%d results, want 3", len(rs))
	}
	for i, r := range rs {
		var te *producer.TaskError
		if !errors.As(r.Err, &te) || te.Index != i || te.Message != `unknown task kind: "nope"` {
			t.Errorf("result %d: err %v, want the unknown kind error", i, r.Err)
		}
	}
	info, err := e.topo.Dead.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("%d dead letters, want 2 (two task messages)", info.State.Msgs)
	}
}

// Big inputs end a chunk early instead of outgrowing the broker's message
// limit: 100 inputs of 20 KB each at chunk size 100 (2 MB together) all
// come back, exact and in order.
func TestBigInputsSplitChunks(t *testing.T) {
	e := newEnv(t)
	reg := demo.Builtins()
	if err := reg.Register("len", task.HandlerFunc(func(_ context.Context, args json.RawMessage) (json.RawMessage, error) {
		var s string
		if err := json.Unmarshal(args, &s); err != nil {
			return nil, err
		}
		return json.RawMessage(strconv.Itoa(len(s))), nil
	})); err != nil {
		t.Fatal(err)
	}
	e.workers(t, 2, 1, reg)
	args := make([]any, 100)
	for i := range args {
		args[i] = strings.Repeat("x", 20_000+i)
	}
	pool := producer.NewPool(e.q, producer.PoolConfig{ChunkSize: 100, Workers: 2})
	rs, err := pool.Map(ctxT(t), "len", args)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if r.Index != i || r.Err != nil || string(r.Value) != strconv.Itoa(20_000+i) {
			t.Fatalf("result %d: %+v, want index %d value %d", i, r, i, 20_000+i)
		}
	}
	if len(rs) != 100 {
		t.Errorf("%d results, want 100", len(rs))
	}
}

// A map holds at most its inputs window in flight, whatever the message
// window allows: with no worker to answer, the publisher of a 1,000-input
// chunked map of 200,000 inputs stops at 65 task messages (65,000 inputs,
// the 66th chunk would pass the 65,536 inputs of the window), not at the
// 1,024 messages (all 200) the message window alone lets through. Once
// workers come, every input comes back, exact and in order.
func TestInputsWindowBoundsFlight(t *testing.T) {
	e := newEnv(t)
	pool := producer.NewPool(e.q, producer.PoolConfig{ChunkSize: 1000, Workers: 1, Window: 1024})
	ctx := ctxT(t)
	type outcome struct {
		n   int
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		n := 0
		for r, err := range pool.Imap(ctx, demo.KindSquare, func(yield func(any) bool) {
			for i := range 200_000 {
				if !yield(demo.SquareArgs{X: int64(i % 1000)}) {
					return
				}
			}
		}) {
			if err != nil {
				done <- outcome{n, err}
				return
			}
			if want := fmt.Sprint((n % 1000) * (n % 1000)); r.Index != n || string(r.Value) != want {
				done <- outcome{n, fmt.Errorf("result %d: %+v, want %s", n, r, want)}
				return
			}
			n++
		}
		done <- outcome{n, nil}
	}()
	// The publisher fills the window and stops: the stream holds 65
	// messages and, a while later, still 65.
	stored := func() uint64 {
		info, err := e.topo.Tasks.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	deadline := time.Now().Add(20 * time.Second)
	for stored() < 65 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // time for a publisher the window did not stop to go on
	if got := stored(); got != 65 {
		t.Fatalf("%d task messages stored with no worker, want the 65 of the inputs window", got)
	}
	e.workers(t, 2, 1, demo.Builtins())
	if o := <-done; o.err != nil || o.n != 200_000 {
		t.Fatalf("%d results, error %v; want 200000 exact and in order", o.n, o.err)
	}
}
