package msgq_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/procq/procq/broker"
	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/msgq"
	"github.com/procq/procq/protocol"
)

// The tests share one embedded broker, started once in TestMain; each test
// uses queues of its own name and connections of its own, closed when it
// ends, so goleak finds no goroutine left once the broker is down.
var srv *broker.Server

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "procq-msgq-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv, err = broker.Start(broker.Config{URL: "nats://127.0.0.1:0", StoreDir: dir, Token: natstest.Token}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start test broker:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	srv.Shutdown()
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(natstest.LeakOptions()...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// js is a JetStream context on a connection of its own, as another process
// would have.
func js(t *testing.T) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL(), nats.Token(natstest.Token))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	j, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

var queues atomic.Int64

// queueName is a name no other test uses.
func queueName() string { return fmt.Sprintf("q%d", queues.Add(1)) }

func open(t *testing.T, name string, cfg msgq.Config) *msgq.Queue {
	t.Helper()
	q, err := msgq.Open(testCtx(t), js(t), name, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func putInts(t *testing.T, q *msgq.Queue, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := q.Put(testCtx(t), i); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
}

func getInt(t *testing.T, q *msgq.Queue, timeout time.Duration) int {
	t.Helper()
	var n int
	if err := q.GetInto(testCtx(t), timeout, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func wantLen(t *testing.T, q *msgq.Queue, want int) {
	t.Helper()
	n, err := q.Len(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Errorf("Len = %d, want %d", n, want)
	}
}

func wantEmpty(t *testing.T, q *msgq.Queue) {
	t.Helper()
	if data, err := q.Get(testCtx(t), 0); !errors.Is(err, msgq.ErrEmpty) {
		t.Errorf("Get of an empty queue = %s, %v; want ErrEmpty", data, err)
	}
}

// Items come out in the order they were put, each as the JSON it was put as.
func TestFIFO(t *testing.T) {
	t.Parallel()
	q := open(t, queueName(), msgq.Config{})
	const n = 500
	putInts(t, q, 0, n)
	wantLen(t, q, n)
	for i := range n {
		data, err := q.Get(testCtx(t), time.Second)
		if err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		if want := fmt.Sprint(i); string(data) != want {
			t.Fatalf("item %d = %s, want %s", i, data, want)
		}
	}
	wantLen(t, q, 0)
	wantEmpty(t, q)
}

// Any JSON value goes through unchanged, big integers included.
func TestValuesExact(t *testing.T) {
	t.Parallel()
	q := open(t, queueName(), msgq.Config{})
	values := []any{int64(9007199254740993), int64(math.MinInt64), "a,b\n\"c\"", []any{1, "x", nil}, map[string]any{"k": []int{1, 2}}, true, nil, 2.5}
	want := []string{"9007199254740993", "-9223372036854775808", `"a,b\n\"c\""`, `[1,"x",null]`, `{"k":[1,2]}`, "true", "null", "2.5"}
	for _, v := range values {
		if err := q.Put(testCtx(t), v); err != nil {
			t.Fatal(err)
		}
	}
	raw := json.RawMessage(`{"b":1,  "a":[2]}`)
	if err := q.PutJSON(testCtx(t), raw); err != nil {
		t.Fatal(err)
	}
	want = append(want, string(raw)) // as it was, spaces and key order kept
	for i, w := range want {
		data, err := q.Get(testCtx(t), time.Second)
		if err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		if string(data) != w {
			t.Errorf("item %d = %s, want %s", i, data, w)
		}
	}
	wantEmpty(t, q)
}

// Concurrent getters, each with a queue value and a connection of its own
// as separate processes would have, get every item exactly once between
// them, while a putter is still putting.
func TestEachItemToOneGetter(t *testing.T) {
	t.Parallel()
	name := queueName()
	const n, getters = 600, 6
	putter := open(t, name, msgq.Config{})
	qs := make([]*msgq.Queue, getters)
	for g := range qs {
		qs[g] = open(t, name, msgq.Config{})
	}
	ctx := testCtx(t)
	var putErr error
	putDone := make(chan struct{})
	go func() {
		defer close(putDone)
		for i := range n {
			if putErr = putter.Put(ctx, i); putErr != nil {
				return
			}
		}
	}()
	var (
		mu    sync.Mutex
		count = make([]int, n) // how often each item was got
		by    = make([]int, getters)
		total atomic.Int64
		wg    sync.WaitGroup
		errs  = make(chan error, getters)
	)
	for g, q := range qs {
		wg.Go(func() {
			for total.Load() < n && ctx.Err() == nil {
				var i int
				// At 200ms per get, under the whole suite's load, one item
				// came back only after the getters' 30 s ack wait, past this
				// test's minute (599 of 600): a delivery lost between broker
				// and getter, most likely one sent as the getter gave up
				// (not reproduced through a 100 ms proxy).
				err := q.GetInto(ctx, 2*time.Second, &i)
				if errors.Is(err, msgq.ErrEmpty) {
					continue // the putter is behind
				}
				if err != nil {
					errs <- fmt.Errorf("getter %d: %w", g, err)
					return
				}
				if i < 0 || i >= n {
					errs <- fmt.Errorf("getter %d: item %d was never put", g, i)
					return
				}
				mu.Lock()
				count[i]++
				by[g]++
				mu.Unlock()
				total.Add(1)
			}
		})
	}
	wg.Wait()
	<-putDone
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if putErr != nil {
		t.Fatal(putErr)
	}
	for i, c := range count {
		if c != 1 {
			t.Errorf("item %d got %d times, want once", i, c)
		}
	}
	sum := 0
	for _, c := range by {
		sum += c
	}
	if sum != n {
		t.Errorf("getters got %d items between them (%v), want %d", sum, by, n)
	}
	t.Logf("items per getter: %v", by)
	wantLen(t, putter, 0)
	wantEmpty(t, putter)
}

// Get waits up to its timeout for an item, then fails with ErrEmpty; a
// zero timeout does not wait; an item put while Get waits is got.
func TestGetTimeout(t *testing.T) {
	t.Parallel()
	q := open(t, queueName(), msgq.Config{})
	const timeout = 300 * time.Millisecond
	start := time.Now()
	_, err := q.Get(testCtx(t), timeout)
	took := time.Since(start)
	if !errors.Is(err, msgq.ErrEmpty) {
		t.Fatalf("Get of an empty queue: %v, want ErrEmpty", err)
	}
	if took < timeout/2 || took > timeout+10*time.Second {
		t.Errorf("Get(%v) of an empty queue returned after %v", timeout, took)
	}
	if !strings.Contains(err.Error(), q.Name()) {
		t.Errorf("error %q does not name the queue %s", err, q.Name())
	}
	wantEmpty(t, q) // timeout 0

	got := make(chan int, 1)
	go func() {
		var n int
		if err := q.GetInto(testCtx(t), 20*time.Second, &n); err != nil {
			t.Error(err)
		}
		got <- n
	}()
	time.Sleep(100 * time.Millisecond)
	putInts(t, q, 7, 8)
	if n := <-got; n != 7 {
		t.Errorf("a waiting Get got %d, want 7", n)
	}
}

// A Get whose context ends returns the context's error, not ErrEmpty.
func TestGetContextCancelled(t *testing.T) {
	t.Parallel()
	q := open(t, queueName(), msgq.Config{})
	ctx, cancel := context.WithCancel(testCtx(t))
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := q.Get(ctx, 20*time.Second)
	if !errors.Is(err, context.Canceled) || errors.Is(err, msgq.ErrEmpty) {
		t.Errorf("Get with a cancelled context: %v, want context.Canceled", err)
	}
}

// A full queue makes Put wait for room and fail with ErrFull after its put
// timeout; a Get makes room, and a waiting Put then succeeds. Queue values
// opened later on the name with MaxSize 0 keep the bound.
func TestMaxSize(t *testing.T) {
	t.Parallel()
	name := queueName()
	const putTimeout = 500 * time.Millisecond
	q := open(t, name, msgq.Config{MaxSize: 3, PutTimeout: putTimeout})
	putInts(t, q, 0, 3)
	wantLen(t, q, 3)

	start := time.Now()
	err := q.Put(testCtx(t), 3)
	took := time.Since(start)
	if !errors.Is(err, msgq.ErrFull) {
		t.Fatalf("Put to a full queue: %v, want ErrFull", err)
	}
	if took < putTimeout*4/5 || took > putTimeout+10*time.Second {
		t.Errorf("Put to a full queue failed after %v, want about the put timeout %v", took, putTimeout)
	}
	wantLen(t, q, 3)

	// Another value on the name keeps the bound, and waits longer.
	patient := open(t, name, msgq.Config{PutTimeout: 20 * time.Second})
	putErr := make(chan error, 1)
	go func() { putErr <- patient.Put(testCtx(t), 3) }()
	time.Sleep(300 * time.Millisecond) // the Put is waiting
	select {
	case err := <-putErr:
		t.Fatalf("Put to a full queue returned %v before a Get made room", err)
	default:
	}
	if n := getInt(t, q, time.Second); n != 0 {
		t.Errorf("Get = %d, want 0", n)
	}
	if err := <-putErr; err != nil {
		t.Fatalf("a waiting Put failed after a Get made room: %v", err)
	}
	wantLen(t, q, 3)
	for want := 1; want <= 3; want++ {
		if n := getInt(t, q, time.Second); n != want {
			t.Errorf("Get = %d, want %d", n, want)
		}
	}
	wantEmpty(t, q)

	// A queue opened with a negative maxsize is refused.
	if _, err := msgq.Open(testCtx(t), js(t), queueName(), msgq.Config{MaxSize: -1}, nil); err == nil || !strings.Contains(err.Error(), "maxsize must not be negative") {
		t.Errorf("Open with MaxSize -1: %v, want an error", err)
	}
}

// A taken item stays in the queue until Done; Return puts it back at the
// head, for the next Get.
func TestTakeReturnDone(t *testing.T) {
	t.Parallel()
	q := open(t, queueName(), msgq.Config{})
	for _, s := range []string{"a", "b", "c"} {
		if err := q.Put(testCtx(t), s); err != nil {
			t.Fatal(err)
		}
	}
	it, err := q.Take(testCtx(t), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(it.Data()) != `"a"` {
		t.Fatalf("Take = %s, want \"a\"", it.Data())
	}
	wantLen(t, q, 3) // taken, not removed
	if err := it.Return(); err != nil {
		t.Fatal(err)
	}
	// Returned, the item is no longer the taker's to remove or return.
	if err := it.Done(testCtx(t)); err == nil {
		t.Error("Done after Return succeeded, want an error")
	}
	if err := it.Return(); err == nil {
		t.Error("a second Return succeeded, want an error")
	}
	wantLen(t, q, 3)
	// The next Get, at once, gets the returned item: Return waited for
	// the broker to put it back in line.
	if data, err := q.Get(testCtx(t), 5*time.Second); err != nil || string(data) != `"a"` {
		t.Fatalf("Get after Return = %s, %v; want \"a\" again", data, err)
	}
	wantLen(t, q, 2)

	it, err = q.Take(testCtx(t), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(it.Data()) != `"b"` {
		t.Fatalf("Take = %s, want \"b\"", it.Data())
	}
	// While b is taken, the next getter gets c, not b.
	if data, err := q.Get(testCtx(t), time.Second); err != nil || string(data) != `"c"` {
		t.Fatalf("Get while b is taken = %s, %v; want \"c\"", data, err)
	}
	wantLen(t, q, 1)
	if err := it.Done(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	wantLen(t, q, 0)
	wantEmpty(t, q)
	if _, err := q.Take(testCtx(t), 0); !errors.Is(err, msgq.ErrEmpty) {
		t.Errorf("Take of an empty queue: %v, want ErrEmpty", err)
	}
}

// Len counts what the queue holds, exactly, as puts and gets go.
func TestLen(t *testing.T) {
	t.Parallel()
	q := open(t, queueName(), msgq.Config{})
	wantLen(t, q, 0)
	putInts(t, q, 0, 1)
	wantLen(t, q, 1)
	putInts(t, q, 1, 25)
	wantLen(t, q, 25)
	for range 10 {
		getInt(t, q, time.Second)
	}
	wantLen(t, q, 15)
	for range 15 {
		getInt(t, q, time.Second)
	}
	wantLen(t, q, 0)
}

// GetInto decodes the item into a typed value, big integers exact; an item
// that does not fit the type is an error that says so.
func TestGetInto(t *testing.T) {
	t.Parallel()
	type point struct {
		Name string   `json:"name"`
		ID   int64    `json:"id"`
		Tags []string `json:"tags"`
	}
	q := open(t, queueName(), msgq.Config{})
	in := point{Name: "p,1", ID: 9007199254740993, Tags: []string{"x", "y"}}
	if err := q.Put(testCtx(t), in); err != nil {
		t.Fatal(err)
	}
	if err := q.PutJSON(testCtx(t), json.RawMessage(`{"name":"raw","id":-9223372036854775808}`)); err != nil {
		t.Fatal(err)
	}
	var out point
	if err := q.GetInto(testCtx(t), time.Second, &out); err != nil {
		t.Fatal(err)
	}
	if out.Name != in.Name || out.ID != in.ID || !slices.Equal(out.Tags, in.Tags) {
		t.Errorf("GetInto = %+v, want %+v", out, in)
	}
	out = point{}
	if err := q.GetInto(testCtx(t), time.Second, &out); err != nil {
		t.Fatal(err)
	}
	if out.Name != "raw" || out.ID != math.MinInt64 || out.Tags != nil {
		t.Errorf("GetInto = %+v, want raw, MinInt64, no tags", out)
	}

	if err := q.Put(testCtx(t), "not a number"); err != nil {
		t.Fatal(err)
	}
	var n int
	err := q.GetInto(testCtx(t), time.Second, &n)
	if err == nil || errors.Is(err, msgq.ErrEmpty) || !strings.Contains(err.Error(), "decode item") {
		t.Errorf("GetInto of a string into an int: %v, want a decode error", err)
	}
	// The item that did not decode is still there, first in line.
	var s string
	if err := q.GetInto(testCtx(t), time.Second, &s); err != nil || s != "not a number" {
		t.Errorf("GetInto after a decode error: %q, %v; want the same item", s, err)
	}
	var empty point
	if err := q.GetInto(testCtx(t), 0, &empty); !errors.Is(err, msgq.ErrEmpty) {
		t.Errorf("GetInto of an empty queue: %v, want ErrEmpty", err)
	}
}

// PutJSON refuses what is not one JSON value, and Put what JSON cannot
// encode; neither stores anything.
func TestPutRefusesInvalid(t *testing.T) {
	t.Parallel()
	q := open(t, queueName(), msgq.Config{})
	for _, bad := range []string{"", "{", `{"a":}`, "[1,2", "nope", `"unterminated`, "1 2", "{}{}"} {
		err := q.PutJSON(testCtx(t), json.RawMessage(bad))
		if err == nil || !strings.Contains(err.Error(), "not a JSON value") {
			t.Errorf("PutJSON(%q): %v, want an error saying it is not a JSON value", bad, err)
		}
	}
	for _, bad := range []any{math.NaN(), math.Inf(1), make(chan int), func() {}} {
		if err := q.Put(testCtx(t), bad); err == nil {
			t.Errorf("Put(%T) succeeded, want an error", bad)
		}
	}
	wantLen(t, q, 0)
	wantEmpty(t, q)
}

// A queue name that is not one subject token is refused.
func TestBadName(t *testing.T) {
	t.Parallel()
	j := js(t)
	for _, name := range []string{"", "a.b", "a b", "a*", "a>", "q/1", "é", strings.Repeat("x", 65)} {
		if q, err := msgq.Open(testCtx(t), j, name, msgq.Config{}, nil); err == nil || !strings.Contains(err.Error(), "queue name") {
			t.Errorf("Open(%q) = %v, %v; want a queue name error", name, q, err)
		}
	}
	if _, err := msgq.Open(testCtx(t), j, strings.Repeat("x", 64), msgq.Config{}, nil); err != nil {
		t.Errorf("Open of a 64-character name: %v", err)
	}
}

// Two queue values opened on one name, on two connections as two
// processes would, share the items; other names do not see them.
func TestSharedByName(t *testing.T) {
	t.Parallel()
	name := queueName()
	a := open(t, name, msgq.Config{})
	b := open(t, name, msgq.Config{})
	other := open(t, queueName(), msgq.Config{})
	putInts(t, a, 0, 2)
	putInts(t, b, 2, 4)
	wantLen(t, a, 4)
	wantLen(t, b, 4)
	wantLen(t, other, 0)
	if a.Name() != name || b.Name() != name {
		t.Errorf("names %s, %s; want %s", a.Name(), b.Name(), name)
	}
	for want, q := range []*msgq.Queue{b, a, b, a} {
		if n := getInt(t, q, time.Second); n != want {
			t.Errorf("Get = %d, want %d", n, want)
		}
	}
	wantEmpty(t, a)
	wantEmpty(t, b)

	// Opened again after its items are put, a queue still has them.
	putInts(t, a, 4, 5)
	c := open(t, name, msgq.Config{})
	if n := getInt(t, c, time.Second); n != 4 {
		t.Errorf("Get on a queue opened after the put = %d, want 4", n)
	}
}

// A queue declared by an older procq (its delayed items sourced through
// nats-server's own consumer) is declared again with its durable source
// consumer by a client that may declare, and opened as it is by one that
// may not (a consumer's role): its stream is left untouched, and its items
// are got.
func TestOlderQueueOpenedAsIsOrDeclaredAgain(t *testing.T) {
	t.Parallel()
	name := queueName()
	ctx := testCtx(t)
	j := js(t)
	if _, err := protocol.EnsureSched(ctx, j, 1, nil); err != nil {
		t.Fatal(err)
	}
	sc := protocol.MsgQueueStreamConfig(name, 0, 1, true)
	sc.Sources[0].Consumer = nil // as before durable sources
	if _, err := j.CreateStream(ctx, sc); err != nil {
		t.Fatal(err)
	}
	sources := func() []*jetstream.StreamSource {
		s, err := j.Stream(ctx, sc.Name)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().Config.Sources
	}
	asIs := open(t, name, msgq.Config{UseAsIs: true})
	if s := sources(); len(s) != 1 || s[0].Consumer != nil {
		t.Errorf("opened as it is, the stream's sources became %+v", s)
	}
	putInts(t, asIs, 0, 2)
	var got int
	if err := asIs.GetInto(ctx, 2*time.Second, &got); err != nil || got != 0 {
		t.Errorf("get from the queue opened as it is: %d, %v; want 0", got, err)
	}
	open(t, name, msgq.Config{})
	if s := sources(); len(s) != 1 || s[0].Consumer == nil || s[0].Consumer.Name != protocol.SourceDurable(sc.Name) {
		t.Errorf("declared again, the stream's sources are %+v, want PROCQ_SCHED through %s", s, protocol.SourceDurable(sc.Name))
	}
	if err := asIs.GetInto(ctx, 2*time.Second, &got); err != nil || got != 1 {
		t.Errorf("get after the queue was declared again: %d, %v; want 1", got, err)
	}
}
