package consumer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/procq/procq/broker"
	"github.com/procq/procq/consumer"
	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/task"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type fixture struct {
	js   jetstream.JetStream
	topo *broker.Topology
	out  *lockedBuf
}

func setup(t *testing.T, queue string) *fixture {
	t.Helper()
	b := natstest.Start(t)
	js := b.JetStream(t)
	topo, err := broker.EnsureQueue(context.Background(), js, broker.QueueConfig{Name: queue, AckWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{js: js, topo: topo, out: &lockedBuf{}}
}

func (f *fixture) publish(t *testing.T, subject string, hdr map[string]string, body string) {
	t.Helper()
	m := &nats.Msg{Subject: subject, Data: []byte(body), Header: nats.Header{}}
	for k, v := range hdr {
		m.Header.Set(k, v)
	}
	if _, err := f.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// startRun records run as the queue's current, closed run, as a producer
// does once it has put its sentinels.
func (f *fixture) startRun(t *testing.T, queue, run string) {
	t.Helper()
	b, _ := json.Marshal(task.RunRecord{Run: run, State: task.RunOpen})
	if _, err := f.topo.Runs.Put(context.Background(), queue, b); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) sentinel(t *testing.T, queue, run string) {
	f.publish(t, task.SentinelSubject(queue), map[string]string{task.HeaderSentinel: "1", task.HeaderRun: run}, "")
}

func (f *fixture) run(t *testing.T, reg *task.Registry, cfg consumer.Config) error {
	t.Helper()
	cfg.Out = f.out
	cfg.FetchWait = time.Second
	w, err := consumer.New(cfg, f.js, f.topo, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = w.Run(ctx)
	if ctx.Err() != nil {
		t.Fatalf("worker did not stop on its sentinel: %v", ctx.Err())
	}
	if !w.TookSentinel() {
		t.Errorf("TookSentinel() = false after a sentinel")
	}
	return err
}

func deadLetters(t *testing.T, f *fixture, queue string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	info, err := f.topo.Dead.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := f.topo.Dead.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject == task.DeadSubject(queue) {
			out = append(out, m)
		}
	}
	return out
}

// Malformed and unknown messages are dead-lettered with the reason while the
// consumer goes on to the good ones and its sentinel.
func TestBadMessagesAreDeadLettered(t *testing.T) {
	const q = "bad"
	f := setup(t, q)
	var mu sync.Mutex
	var ran []int64
	reg := task.NewRegistry()
	if err := reg.Register("double", task.HandlerFunc(func(_ context.Context, raw json.RawMessage) (json.RawMessage, error) {
		var a struct{ X int64 }
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, err
		}
		mu.Lock()
		ran = append(ran, a.X)
		mu.Unlock()
		return json.Marshal(2 * a.X)
	})); err != nil {
		t.Fatal(err)
	}
	ws := task.WorkSubject(q, "r1")
	f.publish(t, ws, nil, "no kind header")
	f.publish(t, ws, map[string]string{task.HeaderKind: "nope"}, "{}")
	f.publish(t, ws, map[string]string{task.HeaderKind: "double"}, `{"X":1}`)
	f.publish(t, ws, map[string]string{task.HeaderKind: "double"}, `not json`)
	f.publish(t, ws, map[string]string{task.HeaderKind: "double", task.HeaderChunk: "3"}, `[{"X":2}]`)
	f.publish(t, ws, map[string]string{task.HeaderKind: "double", task.HeaderReply: "procq.results.r", task.HeaderIndex: "x"}, `{"X":3}`)
	f.publish(t, ws, map[string]string{task.HeaderKind: "double"}, `{"X":4}`)
	f.startRun(t, q, "r1")
	f.sentinel(t, q, "r1")

	if err := f.run(t, reg, consumer.Config{Name: "C-1"}); err != nil {
		t.Fatal(err)
	}
	if len(ran) != 2 || ran[0] != 1 || ran[1] != 4 {
		t.Errorf("handler ran for %v, want [1 4]", ran)
	}
	dl := deadLetters(t, f, q)
	wantReasons := []string{
		"missing Procq-Kind header",
		`unknown task kind: "nope"`,
		"bad task arguments", // not json: the handler's error
		"Procq-Chunk says 3, body has 1",
		"bad Procq-Index header",
	}
	if len(dl) != len(wantReasons) {
		t.Fatalf("%d dead letters, want %d", len(dl), len(wantReasons))
	}
	for i, m := range dl {
		reason := m.Header.Get(task.HeaderError)
		if !bytes.Contains([]byte(reason), []byte(wantReasons[i])) && !(i == 2 && reason != "") {
			t.Errorf("dead letter %d reason %q, want it to contain %q", i, reason, wantReasons[i])
		}
		if m.Header.Get(task.HeaderSubject) != ws || m.Header.Get(task.HeaderConsumer) != "C-1" {
			t.Errorf("dead letter %d headers %v", i, m.Header)
		}
	}
	if string(dl[0].Data) != "no kind header" {
		t.Errorf("dead letter body %q, want the original body", dl[0].Data)
	}
	// Nothing is left in the work queue: every message was acked or termed.
	info, err := f.topo.Tasks.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("%d messages left in the task stream, want 0", info.State.Msgs)
	}
}

// A message delivered more often than MaxDeliver (its consumers kept dying)
// is dead-lettered without running again.
func TestTryLimitDeadLetters(t *testing.T) {
	const q = "tries"
	f := setup(t, q)
	f.publish(t, task.WorkSubject(q, "r1"), map[string]string{task.HeaderKind: "square"}, `{"x":3}`)
	// Take the message twice without acking, as two crashed consumers would.
	for range 2 {
		m, err := f.topo.Consumer.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Nak(); err != nil {
			t.Fatal(err)
		}
	}
	f.startRun(t, q, "r1")
	f.sentinel(t, q, "r1")
	if err := f.run(t, task.Builtins(), consumer.Config{Name: "C-1", MaxDeliver: 2}); err != nil {
		t.Fatal(err)
	}
	dl := deadLetters(t, f, q)
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	if got := dl[0].Header.Get(task.HeaderError); got != "delivered 3 times, over max_deliver 2" {
		t.Errorf("reason %q", got)
	}
	if got := dl[0].Header.Get(task.HeaderDelivered); got != "3" {
		t.Errorf("%s = %q, want 3", task.HeaderDelivered, got)
	}
}

// A task with a reply subject gets one result message whose outcomes say
// result or error per input, in order.
func TestResultsPublished(t *testing.T) {
	const q = "res"
	f := setup(t, q)
	f.publish(t, task.WorkSubject(q, "r1"), map[string]string{
		task.HeaderKind: "square", task.HeaderReply: task.ResultSubject("run1"),
		task.HeaderRun: "run1", task.HeaderIndex: "4", task.HeaderChunk: "3",
	}, `[{"x":2},{"x":5000000000},{"x":-6}]`)
	f.startRun(t, q, "r1")
	f.sentinel(t, q, "r1")
	if err := f.run(t, task.Builtins(), consumer.Config{Name: "C-7"}); err != nil {
		t.Fatal(err)
	}
	m, err := f.topo.Results.GetLastMsgForSubject(context.Background(), task.ResultSubject("run1"))
	if err != nil {
		t.Fatal(err)
	}
	var answers []task.Answer
	if err := json.Unmarshal(m.Data, &answers); err != nil {
		t.Fatal(err)
	}
	if len(answers) != 1 || answers[0].Index != 4 {
		t.Fatalf("answers %+v, want one for index 4", answers)
	}
	outs := answers[0].Outcomes
	if len(outs) != 3 || string(outs[0].Result) != "4" || outs[1].Error == "" || outs[1].Result != nil || string(outs[2].Result) != "36" {
		t.Errorf("outcomes %+v, want [4, error, 36]", outs)
	}
	for k, want := range map[string]string{task.HeaderRun: "run1", task.HeaderConsumer: "C-7", task.HeaderMsgID: "run1.4"} {
		if got := m.Header.Get(k); got != want {
			t.Errorf("result header %s = %q, want %q", k, got, want)
		}
	}
}

// A sentinel of another run is dropped; the worker takes its own.
func TestStaleSentinelDropped(t *testing.T) {
	const q = "stale"
	f := setup(t, q)
	f.sentinel(t, q, "old")
	f.startRun(t, q, "new")
	f.sentinel(t, q, "new")
	if err := f.run(t, task.Builtins(), consumer.Config{Name: "C-1"}); err != nil {
		t.Fatal(err)
	}
	if got := f.out.String(); got != "Consumer C-1: Received sentinel, exiting.\n" {
		t.Errorf("output %q, want one sentinel line", got)
	}
	info, err := f.topo.Tasks.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("%d messages left, want 0 (stale sentinel removed)", info.State.Msgs)
	}
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A task that runs longer than the ack wait keeps its lease with
// heartbeats: it is not redelivered to the other worker meanwhile.
func TestLongTaskKeepsLease(t *testing.T) {
	const q = "long"
	f := setup(t, q) // ack wait 1s
	var runs atomic.Int32
	reg := task.NewRegistry()
	if err := reg.Register("long", task.HandlerFunc(func(ctx context.Context, _ json.RawMessage) (json.RawMessage, error) {
		runs.Add(1)
		return nil, task.Sleep(ctx, 2500*time.Millisecond)
	})); err != nil {
		t.Fatal(err)
	}
	f.publish(t, task.WorkSubject(q, "r1"), map[string]string{task.HeaderKind: "long"}, `{}`)
	f.startRun(t, q, "r1")
	f.sentinel(t, q, "r1")
	f.sentinel(t, q, "r1")
	var wg sync.WaitGroup
	for _, name := range []string{"C-1", "C-2"} {
		wg.Go(func() {
			if err := f.run(t, reg, consumer.Config{Name: name}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := runs.Load(); n != 1 {
		t.Errorf("long task ran %d times, want 1 (heartbeats keep the lease)", n)
	}
}
