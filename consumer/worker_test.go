package consumer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/procq/procq/consumer"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, natstest.LeakOptions()...)
}

type fixture struct {
	js   jetstream.JetStream
	topo *protocol.Topology
	out  *lockedBuf
}

func setup(t *testing.T, queue string) *fixture {
	t.Helper()
	return setupAck(t, queue, time.Second)
}

// setupAck is setup with the queue's ack wait. A test that counts runs
// exactly (no delivery again) takes one that a lease renewed late on a
// loaded machine does not outlast: at 1 s one was redelivered under the
// whole suite's load, which at-least-once delivery allows.
func setupAck(t *testing.T, queue string, ackWait time.Duration) *fixture {
	t.Helper()
	b := natstest.Start(t)
	js := b.JetStream(t)
	topo, err := protocol.EnsureQueue(context.Background(), js, protocol.QueueConfig{Name: queue, AckWait: ackWait})
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
	b, _ := json.Marshal(protocol.RunRecord{Run: run, State: protocol.RunOpen})
	if _, err := f.topo.Runs.Put(context.Background(), queue, b); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) sentinel(t *testing.T, queue, run string) {
	f.publish(t, protocol.SentinelSubject(queue), map[string]string{protocol.HeaderSentinel: "1", protocol.HeaderRun: run}, "")
}

func (f *fixture) run(t *testing.T, reg *task.Registry, cfg consumer.Config) error {
	t.Helper()
	return f.runWorker(reg, cfg)
}

// runWorker runs a worker until it takes its sentinel; it reports every
// failure as its error, so that it may run in a goroutine of the test.
func (f *fixture) runWorker(reg *task.Registry, cfg consumer.Config) error {
	cfg.Out = f.out
	cfg.FetchWait = time.Second
	w, err := consumer.New(cfg, f.js, f.topo, reg, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = w.Run(ctx)
	if ctx.Err() != nil {
		return fmt.Errorf("worker %s did not stop on its sentinel: %v", cfg.Name, ctx.Err())
	}
	if err == nil && !w.TookSentinel() {
		return fmt.Errorf("worker %s: TookSentinel() = false after a sentinel", cfg.Name)
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
		if m.Subject == protocol.DeadSubject(queue) {
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
	ws := protocol.WorkSubject(q, "r1")
	f.publish(t, ws, nil, "no kind header")
	f.publish(t, ws, map[string]string{protocol.HeaderKind: "nope"}, "{}")
	f.publish(t, ws, map[string]string{protocol.HeaderKind: "double"}, `{"X":1}`)
	f.publish(t, ws, map[string]string{protocol.HeaderKind: "double"}, `not json`)
	f.publish(t, ws, map[string]string{protocol.HeaderKind: "double", protocol.HeaderChunk: "3"}, `[{"X":2}]`)
	f.publish(t, ws, map[string]string{protocol.HeaderKind: "double", protocol.HeaderReply: "procq.results.r", protocol.HeaderIndex: "x"}, `{"X":3}`)
	f.publish(t, ws, map[string]string{protocol.HeaderKind: "double"}, `{"X":4}`)
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
		"input 0 of the message: invalid character", // not json: the handler's error
		"Procq-Chunk says 3, body has 1",
		`Procq-Index "x" is not an index from 0`,
	}
	if len(dl) != len(wantReasons) {
		t.Fatalf("%d dead letters, want %d", len(dl), len(wantReasons))
	}
	for i, m := range dl {
		reason := m.Header.Get(protocol.HeaderError)
		if !strings.Contains(reason, wantReasons[i]) {
			t.Errorf("dead letter %d reason %q, want it to contain %q", i, reason, wantReasons[i])
		}
		if m.Header.Get(protocol.HeaderSubject) != ws || m.Header.Get(protocol.HeaderConsumer) != "C-1" {
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
	f.publish(t, protocol.WorkSubject(q, "r1"), map[string]string{protocol.HeaderKind: "square"}, `{"x":3}`)
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
	if err := f.run(t, demo.Builtins(), consumer.Config{Name: "C-1", MaxDeliver: 2}); err != nil {
		t.Fatal(err)
	}
	dl := deadLetters(t, f, q)
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	if got := dl[0].Header.Get(protocol.HeaderError); got != "delivered 3 times, over max_deliver 2" {
		t.Errorf("reason %q", got)
	}
	if got := dl[0].Header.Get(protocol.HeaderDelivered); got != "3" {
		t.Errorf("%s = %q, want 3", protocol.HeaderDelivered, got)
	}
}

// A task with a reply subject gets one result message whose outcomes say
// result or error per input, in order.
func TestResultsPublished(t *testing.T) {
	const q = "res"
	f := setup(t, q)
	f.publish(t, protocol.WorkSubject(q, "r1"), map[string]string{
		protocol.HeaderKind: "square", protocol.HeaderReply: protocol.ResultSubject("run1"),
		protocol.HeaderRun: "run1", protocol.HeaderIndex: "4", protocol.HeaderChunk: "3",
	}, `[{"x":2},{"x":5000000000},{"x":-6}]`)
	f.startRun(t, q, "r1")
	f.sentinel(t, q, "r1")
	if err := f.run(t, demo.Builtins(), consumer.Config{Name: "C-7"}); err != nil {
		t.Fatal(err)
	}
	m, err := f.topo.Results.GetLastMsgForSubject(context.Background(), protocol.ResultSubject("run1"))
	if err != nil {
		t.Fatal(err)
	}
	var answers []protocol.Answer
	if err := json.Unmarshal(m.Data, &answers); err != nil {
		t.Fatal(err)
	}
	if len(answers) != 1 || answers[0].Index != 4 {
		t.Fatalf("answers %+v, want one for index 4", answers)
	}
	outs, _ := answers[0].Each()
	if len(outs) != 3 || string(outs[0].Result) != "4" || outs[1].Error == "" || outs[1].Result != nil || string(outs[2].Result) != "36" {
		t.Errorf("outcomes %+v, want [4, error, 36]", outs)
	}
	for k, want := range map[string]string{protocol.HeaderRun: "run1", protocol.HeaderConsumer: "C-7", protocol.HeaderMsgID: "run1.4"} {
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
	if err := f.run(t, demo.Builtins(), consumer.Config{Name: "C-1"}); err != nil {
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
		return nil, demo.Sleep(ctx, 2500*time.Millisecond)
	})); err != nil {
		t.Fatal(err)
	}
	f.publish(t, protocol.WorkSubject(q, "r1"), map[string]string{protocol.HeaderKind: "long"}, `{}`)
	f.startRun(t, q, "r1")
	f.sentinel(t, q, "r1")
	f.sentinel(t, q, "r1")
	var wg sync.WaitGroup
	for _, name := range []string{"C-1", "C-2"} {
		wg.Go(func() {
			if err := f.runWorker(reg, consumer.Config{Name: name}); err != nil {
				t.Error(err) // Error, not Fatal: this is a goroutine of the test
			}
		})
	}
	wg.Wait()
	if n := runs.Load(); n != 1 {
		t.Errorf("long task ran %d times, want 1 (heartbeats keep the lease)", n)
	}
}

// answersOn returns every answer stored on subject, in order, each with
// one outcome per input whichever shape it came in.
func answersOn(t *testing.T, f *fixture, subject string) []protocol.Answer {
	t.Helper()
	ctx := context.Background()
	info, err := f.topo.Results.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	var out []protocol.Answer
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := f.topo.Results.GetMsg(ctx, seq)
		if err != nil || m.Subject != subject {
			continue
		}
		var as []protocol.Answer
		if err := json.Unmarshal(m.Data, &as); err != nil {
			t.Fatalf("result body %s: %v", m.Data, err)
		}
		for _, a := range as {
			outs, ok := a.Each()
			if !ok {
				t.Fatalf("result body %s: results that are no array", m.Data)
			}
			out = append(out, protocol.Answer{Index: a.Index, Outcomes: outs})
		}
	}
	return out
}

// Every rejected message is dead-lettered once, with a reason, keeping its
// original headers, and answered when it has a reply subject; nothing
// loops, and the worker goes on to its sentinel.
func TestRejectedMessagesDeadLetteredAndAnswered(t *testing.T) {
	const q = "rej"
	f := setup(t, q)
	ws := protocol.WorkSubject(q, "r1")
	reply := protocol.ResultSubject("m1")
	hdr := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	K, R, I, C := protocol.HeaderKind, protocol.HeaderReply, protocol.HeaderIndex, protocol.HeaderChunk
	// 0: a reply subject no stream stores: dead-lettered at once, never a loop.
	f.publish(t, ws, hdr("Test-Case", "0", K, "square", R, "procq.nowhere.x", I, "0", protocol.HeaderMsgID, "m1.0"), `{"x":2}`)
	// 1: malformed arguments with a reply: answered with the error, and dead-lettered.
	f.publish(t, ws, hdr("Test-Case", "1", K, "square", R, reply, I, "1", protocol.HeaderRun, "m1"), `{"x":"two"}`)
	// 2: a chunk without a reply whose first input succeeds and the second fails.
	f.publish(t, ws, hdr("Test-Case", "2", K, "square", C, "2"), `[{"x":3},{"x":5000000000}]`)
	// 3: a reply but no index: answered with index -1, and dead-lettered.
	f.publish(t, ws, hdr("Test-Case", "3", K, "square", R, reply, protocol.HeaderRun, "m1"), `{"x":4}`)
	// 4: sumsquares of null is refused, not answered 0.
	f.publish(t, ws, hdr("Test-Case", "4", K, "sumsquares", R, reply, I, "4", protocol.HeaderRun, "m1"), `null`)
	// 5: a message task with a reply answers {"result": null}; not dead-lettered.
	f.publish(t, ws, hdr("Test-Case", "5", K, "message", R, reply, I, "5", protocol.HeaderRun, "m1"), `{"text":"hi"}`)
	// 6: a message on the sentinel subject without Procq-Sentinel.
	f.publish(t, protocol.SentinelSubject(q), hdr("Test-Case", "6", protocol.HeaderRun, "r1"), "not a sentinel")

	reg := demo.Builtins()
	if err := reg.Register(demo.KindMessage, demo.MessageHandler(f.out, "C-1", 0, 0)); err != nil {
		t.Fatal(err)
	}
	f.startRun(t, q, "r1")
	f.sentinel(t, q, "r1")
	if err := f.run(t, reg, consumer.Config{Name: "C-1"}); err != nil {
		t.Fatal(err)
	}

	// Each message carries its case number in a header of its own, which its
	// dead letter must keep like every other original header.
	dl := map[string]*jetstream.RawStreamMsg{}
	for _, m := range deadLetters(t, f, q) {
		c := m.Header.Get("Test-Case")
		if dl[c] != nil {
			t.Errorf("case %s dead-lettered twice", c)
		}
		dl[c] = m
	}
	want := map[string]struct{ subject, reason string }{
		"0": {ws, `reply subject "procq.nowhere.x" is not a results subject (procq.results.<run>): it could never be answered`},
		"1": {ws, "input #1: bad task arguments"},
		"2": {ws, "input 1 of the message: bad task arguments: x*x overflows int64 for x=5000000000"},
		"3": {ws, `Procq-Index "" is not an index from 0`},
		"4": {ws, `input #4: bad task arguments: want a JSON object, got "null"`},
		"6": {protocol.SentinelSubject(q), "not a sentinel"},
	}
	if len(dl) != len(want) {
		for c, m := range dl {
			t.Logf("dead letter of case %s: %s", c, m.Header.Get(protocol.HeaderError))
		}
		t.Fatalf("%d dead letters, want %d (cases 0-4 and 6)", len(dl), len(want))
	}
	for c, w := range want {
		m := dl[c]
		if m == nil {
			t.Errorf("case %s: no dead letter", c)
			continue
		}
		if got := m.Header.Get(protocol.HeaderError); !strings.Contains(got, w.reason) {
			t.Errorf("case %s: reason %q, want it to contain %q", c, got, w.reason)
		}
		if got := m.Header.Get(protocol.HeaderSubject); got != w.subject {
			t.Errorf("case %s: %s = %q, want %q", c, protocol.HeaderSubject, got, w.subject)
		}
		if got := m.Header.Get(protocol.HeaderDelivered); got != "1" {
			t.Errorf("case %s: delivered %q, want 1 (no loop)", c, got)
		}
	}
	if got := dl["0"].Header.Get(protocol.HeaderOrigMsgID); got != "m1.0" {
		t.Errorf("dead letter keeps the original id as %s = %q, want m1.0", protocol.HeaderOrigMsgID, got)
	}
	// Its own id, from the task's stream sequence: the same task
	// dead-lettered again (delivered before its removal) is stored once.
	if got := dl["0"].Header.Get(protocol.HeaderMsgID); !regexp.MustCompile(`^dead\.PROCQ_TASKS\.\d+$`).MatchString(got) {
		t.Errorf("dead letter carries %s %q, want dead.PROCQ_TASKS.<the task's sequence>", protocol.HeaderMsgID, got)
	}
	if got := dl["0"].Header.Get(protocol.HeaderReply); got != "procq.nowhere.x" {
		t.Errorf("dead letter lost its original %s: %q", protocol.HeaderReply, got)
	}

	answers := answersOn(t, f, reply)
	byIndex := map[int]string{}
	for _, a := range answers {
		b, _ := json.Marshal(a.Outcomes)
		byIndex[a.Index] = string(b)
	}
	wantAnswers := map[int]string{
		1:  `[{"error":"input 0 of the message`, // prefix check below
		-1: `[{"error":"Procq-Index \"\" is not an index from 0 on a task with Procq-Reply"}]`,
		4:  `[{"error":"bad task arguments: want a JSON object, got \"null\""}]`,
		5:  `[{"result":null}]`,
	}
	if len(byIndex) != len(wantAnswers) {
		t.Errorf("answers %v, want indexes 1, -1, 4, 5", byIndex)
	}
	for idx, w := range wantAnswers {
		got, ok := byIndex[idx]
		switch {
		case !ok:
			t.Errorf("no answer for index %d", idx)
		case idx == 1 && !strings.HasPrefix(got, `[{"error":"bad task arguments`):
			t.Errorf("answer %d = %s, want a bad-arguments error", idx, got)
		case idx != 1 && got != w:
			t.Errorf("answer %d = %s, want %s", idx, got, w)
		}
	}
	info, err := f.topo.Tasks.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("%d messages left in the task stream, want 0", info.State.Msgs)
	}
}

// No message procq publishes exceeds the broker's max payload: an answer
// too large for one message travels in parts, and a single result too
// large for any message becomes that input's error and a dead letter,
// never a loop.
func TestOversizeAnswers(t *testing.T) {
	const q = "big"
	f := setupAck(t, q, 10*time.Second)
	reg := task.NewRegistry()
	if err := reg.Register("blob", task.HandlerFunc(func(_ context.Context, raw json.RawMessage) (json.RawMessage, error) {
		var kib int
		if err := json.Unmarshal(raw, &kib); err != nil {
			return nil, err
		}
		return json.Marshal(strings.Repeat("x", kib<<10))
	})); err != nil {
		t.Fatal(err)
	}
	ws := protocol.WorkSubject(q, "r1")
	parts, single := protocol.ResultSubject("parts"), protocol.ResultSubject("single")
	// Five results of 300 KiB: 1.5 MiB in all, over the 1 MiB max payload.
	f.publish(t, ws, map[string]string{protocol.HeaderKind: "blob", protocol.HeaderReply: parts, protocol.HeaderRun: "parts",
		protocol.HeaderIndex: "10", protocol.HeaderChunk: "5"}, `[300,300,300,300,300]`)
	// One result of 1.2 MiB: too large for any message.
	f.publish(t, ws, map[string]string{protocol.HeaderKind: "blob", protocol.HeaderReply: single, protocol.HeaderRun: "single",
		protocol.HeaderIndex: "3"}, `1200`)
	f.startRun(t, q, "r1")
	f.sentinel(t, q, "r1")
	if err := f.run(t, reg, consumer.Config{Name: "C-1"}); err != nil {
		t.Fatal(err)
	}

	got := map[int]int{} // index -> result length
	for _, a := range answersOn(t, f, parts) {
		for i, o := range a.Outcomes {
			var s string
			if o.Error != "" || json.Unmarshal(o.Result, &s) != nil {
				t.Errorf("index %d: outcome %.80s, want a 300 KiB string", a.Index+i, o.Error)
			}
			if _, dup := got[a.Index+i]; dup {
				t.Errorf("index %d answered twice", a.Index+i)
			}
			got[a.Index+i] = len(s)
		}
	}
	for i := 10; i < 15; i++ {
		if got[i] != 300<<10 {
			t.Errorf("index %d: result of %d bytes, want %d", i, got[i], 300<<10)
		}
	}
	if len(got) != 5 {
		t.Errorf("answers for %d indexes, want 5 (10-14)", len(got))
	}
	if n := len(answersOn(t, f, parts)); n < 2 {
		t.Errorf("%d answers, want the chunk's answer in at least 2 parts", n)
	}

	as := answersOn(t, f, single)
	if len(as) != 1 || as[0].Index != 3 || len(as[0].Outcomes) != 1 ||
		!strings.Contains(as[0].Outcomes[0].Error, "over the broker's max payload") {
		t.Fatalf("answers %+v, want one error for index 3 naming the max payload", as)
	}
	dl := deadLetters(t, f, q)
	if len(dl) != 1 || !strings.Contains(dl[0].Header.Get(protocol.HeaderError), "input #3: result of") {
		t.Fatalf("dead letters %d, want 1 for input #3", len(dl))
	}
}

// A task dead-lettered again, delivered before the broker applied the
// removal that followed its first dead letter (a broker slow to apply a
// Term, past the ack wait), leaves one dead letter: the second copy has
// the first's id, and the dead-letter stream keeps one.
func TestTaskDeadLetteredAgainStoredOnce(t *testing.T) {
	const q = "again"
	f := setup(t, q)
	ctx := context.Background()
	task := nats.NewMsg(protocol.WorkSubject(q, "r1"))
	task.Header.Set(protocol.HeaderKind, "no-such-kind")
	task.Header.Set(protocol.HeaderRun, "r1")
	task.Data = []byte(`1`)
	ack, err := f.js.PublishMsg(ctx, task)
	if err != nil {
		t.Fatal(err)
	}
	// Its dead letter as a consumer stored it before the Term was lost.
	first := nats.NewMsg(protocol.DeadSubject(q))
	first.Header.Set(nats.MsgIdHdr, fmt.Sprintf("dead.%s.%d", protocol.TasksStream, ack.Sequence))
	first.Header.Set(protocol.HeaderError, "unknown kind")
	first.Data = []byte(`1`)
	if _, err := f.js.PublishMsg(ctx, first); err != nil {
		t.Fatal(err)
	}
	f.startRun(t, q, "r1")
	f.sentinel(t, q, "r1")
	if err := f.run(t, demo.Builtins(), consumer.Config{Name: "C-1"}); err != nil {
		t.Fatal(err)
	}
	if got := deadLetters(t, f, q); len(got) != 1 {
		t.Errorf("%d dead letters of the task, want 1", len(got))
	}
	info, err := f.topo.Tasks.Info(ctx)
	if err != nil || info.State.Msgs != 0 {
		t.Errorf("the task stream holds %v messages (%v), want the task removed", info.State.Msgs, err)
	}
}
