package procq_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/procq/procq"
	"github.com/procq/procq/broker"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/msgq"
	"github.com/procq/procq/producer"
)

// TestMain starts one broker for every test and example of the package,
// builds the consumer they spawn (testdata/consumer: the built-ins and
// "add"), and points procq.Connect at both through the environment, as a
// user's shell would.
func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "procq-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "consumer"), "./testdata/consumer")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build the test consumer:", err)
		return 1
	}
	const token = "procq-test-token"
	srv, err := broker.Start(broker.Config{URL: "nats://127.0.0.1:0", StoreDir: filepath.Join(dir, "data"), Token: token},
		slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintln(os.Stderr, "start broker:", err)
		return 1
	}
	defer srv.Shutdown()
	for k, v := range map[string]string{
		"PROCQ_BROKER_URL":       srv.ClientURL(),
		"PROCQ_BROKER_TOKEN":     token,
		"PROCQ_BROKER_STORE_DIR": filepath.Join(dir, "data"),
		"PROCQ_CONSUMERS_PATH":   filepath.Join(dir, "consumer"),
		"PROCQ_LOG_DIR":          filepath.Join(dir, "logs"),
	} {
		os.Setenv(k, v)
	}
	return m.Run()
}

// connect connects to the test broker with queue as the client's queue.
func connect(t *testing.T, queue string) *procq.Client {
	t.Helper()
	c, err := procq.Connect(t.Context(), procq.WithQueue(queue))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// pool starts a pool of n consumer processes, closed when the test ends.
func pool(t *testing.T, c *procq.Client, n int) *procq.Pool {
	t.Helper()
	p, err := c.Pool(t.Context(), procq.Processes(n))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("pool close: %v", err)
		}
	})
	return p
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// The seed's inputs, typed: exact big sums, in input order, by Map and
// Imap; ImapUnordered yields each once.
func TestTypedMapSeedInputs(t *testing.T) {
	p := pool(t, connect(t, "typed"), 2)
	ctx := ctxT(t)
	var args []demo.SumSquaresArgs
	for _, n := range []int64{50000000, 50000001, 50000002, 50000003, 49999999} {
		args = append(args, demo.SumSquaresArgs{N: n})
	}
	want := []string{"41666665416666675000000", "41666667916666675000000", "41666670416666775000001",
		"41666672916666975000005", "41666662916666774999999"}
	got, err := procq.Map[demo.SumSquaresArgs, string](ctx, p, demo.KindSumSquares, args)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Map = %v, %v; want %v", got, err, want)
	}
	var ordered []string
	for r, err := range procq.Imap[demo.SumSquaresArgs, string](ctx, p, demo.KindSumSquares, slices.Values(args)) {
		if err != nil || r.Err != nil || r.Index != len(ordered) {
			t.Fatalf("Imap: result %+v, error %v", r, err)
		}
		ordered = append(ordered, r.Value)
	}
	if !slices.Equal(ordered, want) {
		t.Errorf("Imap = %v, want %v", ordered, want)
	}
	seen := map[int]string{}
	for r, err := range procq.ImapUnordered[demo.SumSquaresArgs, string](ctx, p, demo.KindSumSquares, slices.Values(args)) {
		if err != nil || r.Err != nil {
			t.Fatalf("ImapUnordered: result %+v, error %v", r, err)
		}
		if _, dup := seen[r.Index]; dup {
			t.Fatalf("index %d twice", r.Index)
		}
		seen[r.Index] = r.Value
	}
	for i, w := range want {
		if seen[i] != w {
			t.Errorf("ImapUnordered index %d = %q, want %q", i, seen[i], w)
		}
	}
}

// A failed input gives its error; the rest keep their results.
func TestTypedMapPerIndexErrors(t *testing.T) {
	p := pool(t, connect(t, "perindex"), 2)
	args := []demo.SquareArgs{{X: 3}, {X: 5_000_000_000}, {X: 4}, {X: -6_000_000_000}}
	got, err := procq.Map[demo.SquareArgs, int64](ctxT(t), p, demo.KindSquare, args)
	var me *procq.MapError
	if !errors.As(err, &me) || me.Inputs != 4 || len(me.Failed) != 2 {
		t.Fatalf("error %v, want a *MapError with 2 of 4 failed", err)
	}
	var te *producer.TaskError
	if !errors.As(me.Failed[0], &te) || te.Index != 1 || !errors.As(me.Failed[1], &te) || te.Index != 3 {
		t.Errorf("failed %v, want inputs 1 and 3", me.Failed)
	}
	if !slices.Equal(got, []int64{9, 0, 16, 0}) {
		t.Errorf("results %v, want [9 0 16 0]", got)
	}
}

// ApplyAsync: Get with a timeout shorter than the task gives up, the task
// goes on, and a later Get has its result.
func TestApplyAsyncGetTimeout(t *testing.T) {
	p := pool(t, connect(t, "applyasync"), 1)
	ctx := ctxT(t)
	h, err := procq.ApplyAsync[demo.SquareArgs, int64](ctx, p, demo.KindSquare, demo.SquareArgs{X: 12, Sleep: "1s"})
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := h.Get(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get with 100ms: %v, want DeadlineExceeded", err)
	}
	if h.Ready() || h.Successful() {
		t.Error("ready before the task could finish")
	}
	v, err := h.Get(ctx)
	if err != nil || v != 144 {
		t.Fatalf("Get = %d, %v; want 144", v, err)
	}
	if !h.Ready() || !h.Successful() {
		t.Error("not ready and successful after Get")
	}
	one, err := procq.Apply[demo.SquareArgs, int64](ctx, p, demo.KindSquare, demo.SquareArgs{X: -9})
	if err != nil || one != 81 {
		t.Errorf("Apply = %d, %v; want 81", one, err)
	}
}

// Starmap: each input is a task's argument list.
func TestStarmap(t *testing.T) {
	p := pool(t, connect(t, "starmap"), 2)
	got, err := procq.Starmap[int](ctxT(t), p, "add", [][]any{{1, 2}, {3, 4, 5}, {}, {-1}})
	if err != nil || !slices.Equal(got, []int{3, 12, 0, -1}) {
		t.Fatalf("Starmap = %v, %v; want [3 12 0 -1]", got, err)
	}
}

// MapAsync calls its callback once with the results, or its error
// callback once with the map's error.
func TestMapAsyncCallbacks(t *testing.T) {
	p := pool(t, connect(t, "mapasync"), 2)
	ctx := ctxT(t)
	var oks, errs atomic.Int32
	var got []int64
	m := procq.MapAsync[demo.SquareArgs, int64](ctx, p, demo.KindSquare, []demo.SquareArgs{{X: 1}, {X: 2}, {X: 3}},
		func(rs []int64) { oks.Add(1); got = rs }, func(error) { errs.Add(1) })
	rs, err := m.Get(ctx)
	if err != nil || !slices.Equal(rs, []int64{1, 4, 9}) || !slices.Equal(got, rs) {
		t.Fatalf("MapAsync: Get %v, %v; callback got %v", rs, err, got)
	}
	if oks.Load() != 1 || errs.Load() != 0 || !m.Successful() {
		t.Errorf("callbacks: %d results, %d errors; successful %v; want 1, 0, true", oks.Load(), errs.Load(), m.Successful())
	}
	var cbErr error
	m = procq.MapAsync[demo.SquareArgs, int64](ctx, p, demo.KindSquare, []demo.SquareArgs{{X: 1}, {X: 5_000_000_000}},
		func([]int64) { oks.Add(1) }, func(err error) { errs.Add(1); cbErr = err })
	if err := m.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	var me *procq.MapError
	if oks.Load() != 1 || errs.Load() != 1 || !errors.As(cbErr, &me) || m.Successful() {
		t.Errorf("callbacks: %d results, %d errors (%v); want 1, 1 with a *MapError", oks.Load(), errs.Load(), cbErr)
	}
}

// The message queue: FIFO, Len, Get's timeout, and maxsize back-pressure.
func TestQueuePutGet(t *testing.T) {
	c := connect(t, "msgq")
	ctx := ctxT(t)
	q, err := c.Queue(ctx, "jobs", 0)
	if err != nil {
		t.Fatal(err)
	}
	type job struct {
		ID   int    `json:"id"`
		Name string `json:"name"`
	}
	for i := range 50 {
		if _, err := procq.Put(ctx, q, job{ID: i, Name: fmt.Sprint("job-", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := q.Len(ctx); err != nil || n != 50 {
		t.Fatalf("Len = %d, %v; want 50", n, err)
	}
	for i := range 50 {
		j, err := procq.Get[job](ctx, q, time.Second)
		if err != nil || j.ID != i || j.Name != fmt.Sprint("job-", i) {
			t.Fatalf("Get %d = %+v, %v", i, j, err)
		}
	}
	start := time.Now()
	if _, err := q.Get(ctx, 300*time.Millisecond); !errors.Is(err, msgq.ErrEmpty) {
		t.Fatalf("Get on an empty queue: %v, want ErrEmpty", err)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Errorf("Get returned ErrEmpty after %v, before its 300ms timeout", waited)
	}
	if _, err := q.Get(ctx, 0); !errors.Is(err, msgq.ErrEmpty) {
		t.Fatalf("Get without waiting: %v, want ErrEmpty", err)
	}

	// Bounded: the third Put waits for room, and fails after PutTimeout.
	b, err := msgq.Open(ctx, c.JetStream(), "bounded", msgq.Config{MaxSize: 2, PutTimeout: 300 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := b.Put(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Put(ctx, 2); !errors.Is(err, msgq.ErrFull) {
		t.Fatalf("third Put into maxsize 2: %v, want ErrFull", err)
	}
	// A waiting Put goes in as soon as a Get makes room.
	b2, err := msgq.Open(ctx, c.JetStream(), "bounded", msgq.Config{PutTimeout: 20 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	put := make(chan error, 1)
	go func() { put <- b2.Put(ctx, 2) }()
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-put:
		t.Fatalf("Put into a full queue returned %v at once, want it to wait", err)
	default:
	}
	if v, err := procq.Get[int](ctx, b, time.Second); err != nil || v != 0 {
		t.Fatalf("Get = %d, %v; want 0", v, err)
	}
	if err := <-put; err != nil {
		t.Fatalf("waiting Put: %v", err)
	}
	var rest []int
	for range 2 {
		v, err := procq.Get[int](ctx, b, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		rest = append(rest, v)
	}
	if !slices.Equal(rest, []int{1, 2}) {
		t.Errorf("then %v, want [1 2]", rest)
	}
}

// Options out of bounds are refused with ErrBadOption, naming the option,
// as config refuses the keys the executables read: the caller does not
// crash (a window of 2^40 once made the process run out of memory), and
// no consumer process is started.
func TestPoolOptionsBounded(t *testing.T) {
	c := connect(t, "bounds")
	for _, tt := range []struct {
		name string
		opt  procq.PoolOption
		want string
	}{
		{"window 2^40", procq.Window(1 << 40), "Window(1099511627776): want 1 to 100000"},
		{"window 0", procq.Window(0), "Window(0): want 1 to 100000"},
		{"chunk MaxInt", procq.ChunkSize(math.MaxInt), "ChunkSize(9223372036854775807): want 0 to 100000"},
		{"negative chunk", procq.ChunkSize(-1), "ChunkSize(-1): want 0 to 100000"},
		{"processes MaxInt", procq.Processes(math.MaxInt), "Processes(9223372036854775807): want 0 to 1024"},
		{"consumers 2^40", procq.Consumers(1 << 40), "Consumers(1099511627776): want 0 to 1024"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := c.Pool(t.Context(), tt.opt)
			if !errors.Is(err, procq.ErrBadOption) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Pool(%s): %v, %v; want ErrBadOption saying %q", tt.name, p, err, tt.want)
			}
		})
	}
}
