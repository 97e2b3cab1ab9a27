package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq"
	"github.com/procq/procq/config"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/ops"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/schedule"
)

// Tasks in time on a standalone broker, with the real executables: delayed
// message-queue items from the shell, delayed tasks cancelled from Go, a
// periodic schedule counted firing by firing, bad specs refused, the wire
// format by hand with the nats CLI, a broker killed with kill -9 while
// tasks and a schedule wait in it, and firings into a full task stream.

// TestScheduleStandalone runs the checks that can share one broker and
// one consumer of the queue demo (each watches its own texts in the
// consumer's output): delayed items from the shell, Cancel from Go, a
// periodic schedule, and the wire format with natscli.
func TestScheduleStandalone(t *testing.T) {
	t.Parallel()
	e := newEnv(t, anyPort).set("PROCQ_BROKER_EMBEDDED", "false")
	b := e.startBroker()
	c := e.start("consumer", "--name", "C-1")
	e.waitLog("consumer-C-1.log", regexp.MustCompile(`msg="consumer started"`), 30*time.Second)
	t.Run("group", func(t *testing.T) {
		t.Run("DelayedItemsFromTheShell", func(t *testing.T) {
			t.Parallel()
			schedDelayedItems(t, e.schedSub(t))
		})
		t.Run("CancelBeforeFiring", func(t *testing.T) {
			t.Parallel()
			schedCancel(t, e.schedSub(t), c)
		})
		t.Run("PeriodicSchedule", func(t *testing.T) {
			t.Parallel()
			schedPeriodic(t, e.schedSub(t), c)
		})
		t.Run("PoolStartsLater", func(t *testing.T) {
			t.Parallel()
			schedPoolLater(t, e.schedSub(t, "PROCQ_QUEUE_NAME", "later"))
		})
		t.Run("QueuePause", func(t *testing.T) {
			t.Parallel()
			queuePause(t, e.schedSub(t, "PROCQ_QUEUE_NAME", "paused"))
		})
		t.Run("PoolDeadline", func(t *testing.T) {
			t.Parallel()
			poolDeadline(t, e.schedSub(t, "PROCQ_QUEUE_NAME", "deadline"))
		})
		t.Run("UniquePuts", func(t *testing.T) {
			t.Parallel()
			uniquePuts(t, e.schedSub(t))
		})
		t.Run("UniqueTasks", func(t *testing.T) {
			t.Parallel()
			uniqueTasks(t, e.schedSub(t, "PROCQ_QUEUE_NAME", "uniqtasks"))
		})
		t.Run("TaskTimeLimit", func(t *testing.T) {
			t.Parallel()
			taskTimeLimit(t, e.schedSub(t, "PROCQ_QUEUE_NAME", "limited"))
		})
		t.Run("TaskCancel", func(t *testing.T) {
			t.Parallel()
			taskCancel(t, e.schedSub(t, "PROCQ_QUEUE_NAME", "cancels"))
		})
		t.Run("PoolPriority", func(t *testing.T) {
			t.Parallel()
			poolPriority(t, e.schedSub(t, "PROCQ_QUEUE_NAME", "prio"))
		})
		t.Run("WireFormatWithNatscli", func(t *testing.T) {
			t.Parallel()
			schedNatscli(t, e.schedSub(t), c)
		})
	})
	if n := e.logCount("consumer-C-1.log", regexp.MustCompile(`msg="fired task not claimed; handed back"`)); n != 0 {
		t.Errorf("the consumer could not claim %d fired tasks", n)
	}
	c.stop()
	b.stop()
}

// schedSub is a subtest's world on the broker its parent started: the
// same directory, store and URL, its processes its own.
func (e *env) schedSub(t *testing.T, kv ...string) *env {
	return (&env{t: t, dir: e.dir, vars: maps.Clone(e.vars)}).set(kv...)
}

// schedClient connects the test itself through the Go front door, with
// the token, on the world's queue and its shape (queue.ack_wait and
// queue.max_messages as the processes have them).
func (e *env) schedClient(ctx context.Context, t *testing.T) *procq.Client {
	t.Helper()
	cfg, err := config.Load(config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Broker.ConnectTimeout = 20 * time.Second
	if d, err := time.ParseDuration(e.vars["PROCQ_QUEUE_ACK_WAIT"]); err == nil {
		cfg.Queue.AckWait = d
	}
	if n, err := strconv.ParseInt(e.vars["PROCQ_QUEUE_MAX_MESSAGES"], 10, 64); err == nil {
		cfg.Queue.MaxMessages = n
	}
	opts := []procq.Option{procq.WithConfig(cfg), procq.WithURL(e.url()), procq.WithToken(e.schedToken(t))}
	if q := e.vars["PROCQ_QUEUE_NAME"]; q != "" {
		opts = append(opts, procq.WithQueue(q))
	}
	c, err := procq.Connect(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// schedToken is the client token the broker wrote into its store.
func (e *env) schedToken(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.vars["PROCQ_BROKER_STORE_DIR"], "token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// schedRun runs bin/<exe> with args to its end and checks its exit code.
func (e *env) schedRun(code int, exe string, args ...string) *proc {
	e.t.Helper()
	p := e.start(exe, args...)
	p.mustExit(code, exitWait)
	return p
}

// schedList is what "broker schedule list --json" prints.
type schedList struct {
	Schedules []schedule.Entry       `json:"schedules"`
	Delayed   []schedule.PendingTask `json:"delayed"`
}

// schedListJSON runs "broker schedule list --json".
func (e *env) schedListJSON() schedList {
	e.t.Helper()
	p := e.schedRun(0, "broker", "schedule", "list", "--json")
	var l schedList
	if err := json.Unmarshal([]byte(p.stdout.String()), &l); err != nil {
		e.t.Fatalf("schedule list --json: %v\n%s", err, p.stdout)
	}
	return l
}

// schedNamed is the listed schedule called name, or nil.
func (l schedList) schedNamed(name string) *schedule.Entry {
	for i := range l.Schedules {
		if l.Schedules[i].Name == name {
			return &l.Schedules[i]
		}
	}
	return nil
}

// schedCompact is JSON v without its spaces.
func schedCompact(v []byte) string {
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return string(v)
	}
	return b.String()
}

// schedLine is one line a process printed, with when it arrived.
type schedLine struct {
	text string
	at   time.Time
}

// schedLines are the complete lines of s with their arrival times.
func schedLines(s *syncBuf) []schedLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []schedLine
	for i, l := range strings.Split(s.b.String(), "\n") {
		if i < len(s.times) {
			out = append(out, schedLine{l, s.times[i]})
		}
	}
	return out
}

var schedGotRE = regexp.MustCompile(`^Consumer \S+: Got '([^']*)' from queue$`)

// schedGot are the consumer's "Got" lines for the message text, with
// their arrival times.
func schedGot(c *proc, text string) []time.Time {
	var at []time.Time
	for _, l := range schedLines(c.stdout) {
		if m := schedGotRE.FindStringSubmatch(l.text); m != nil && m[1] == text {
			at = append(at, l.at)
		}
	}
	return at
}

// schedWait polls cond every 20 ms until it holds or timeout passes.
func schedWait(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// schedFiredKeys lists the claims of queue's consumers in PROCQ_FIRED
// whose firing ids match filter (the fired tasks a consumer took, one
// claim per firing), as firing ids.
func schedFiredKeys(ctx context.Context, t *testing.T, js jetstream.JetStream, queue, filter string) []string {
	t.Helper()
	kv, err := js.KeyValue(ctx, protocol.FiredBucket)
	if err != nil {
		t.Fatal(err)
	}
	l, err := kv.ListKeysFiltered(ctx, protocol.FiredFilter(queue, filter))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, strings.TrimPrefix(k, queue+"."))
	}
	_ = l.Stop() // the list has ended: its subscription is gone
	slices.Sort(keys)
	return keys
}

var schedIDRE = regexp.MustCompile(`^[0-9A-Za-z]{22}$`) // a nuid

// Delayed message-queue items from the shell: put --in prints one id per
// item; before the due time a getter finds nothing and the list shows the
// items; after it they arrive in order, each once, within 5 s. A --at in
// the past runs now and says so; bad --in/--at exit 2 and put nothing.
func schedDelayedItems(t *testing.T, e *env) {
	const delay = 8 * time.Second // room for a put, a get and a list on a busy machine before it
	bad := []struct {
		args []string
		says string
	}{
		{[]string{"--in", "5s", "--at", "2030-01-01T00:00:00Z"}, "producer: give --in or --at, not both"},
		{[]string{"--at", "notatime"}, `producer: --at "notatime": want an RFC 3339 time such as 2026-12-24T18:00:00Z`},
		{[]string{"--in=-1s"}, "producer: --in must not be negative, got -1s"},
		{[]string{"--in", "-1s"}, "producer: --in must not be negative, got -1s"},
	}
	var bads []*proc
	for _, b := range bad {
		bads = append(bads, e.startIn(strings.NewReader("\"bad\"\n"), "producer", append([]string{"put", "jobs"}, b.args...)...))
	}
	for i, p := range bads {
		p.mustExit(2, exitWait)
		if !strings.Contains(p.stderr.String(), bad[i].says) {
			t.Errorf("put %v said:\n%s\nwant %q", bad[i].args, p.stderr, bad[i].says)
		}
		if p.stdout.String() != "" {
			t.Errorf("put %v printed ids: %q", bad[i].args, p.stdout)
		}
	}

	items := []string{`{"n":1}`, `"two"`, `[3]`}
	t0 := time.Now()
	put := e.startIn(strings.NewReader(strings.Join(items, "\n")+"\n"), "producer", "put", "jobs", "--in", delay.String())
	put.mustExit(0, exitWait)
	t1 := time.Now()
	ids := strings.Fields(put.stdout.String())
	if len(ids) != 3 || ids[0] == ids[1] || ids[1] == ids[2] || ids[0] == ids[2] {
		t.Fatalf("put printed %q, want 3 distinct ids", ids)
	}
	for _, id := range ids {
		if !schedIDRE.MatchString(id) {
			t.Errorf("id %q is no nuid", id)
		}
	}
	m := regexp.MustCompile(`^producer: put 3 delayed items on queue jobs, due at (\S+)\n$`).FindStringSubmatch(put.stderr.String())
	if m == nil {
		t.Fatalf("put said %q", put.stderr)
	}
	if due, err := time.Parse(time.RFC3339, m[1]); err != nil || due.Before(t0.Add(delay).Truncate(time.Second)) || due.After(t1.Add(delay)) {
		t.Errorf("put says due at %s, want between %s and %s", m[1], t0.Add(delay).Format(time.RFC3339Nano), t1.Add(delay).Format(time.RFC3339Nano))
	}

	// Before the due time: nothing to get, and the list shows the three.
	empty := e.start("consumer", "get", "jobs", "--timeout", "1s")
	list := e.schedListJSON()
	listed := time.Now()
	empty.mustExit(1, exitWait)
	if !strings.Contains(empty.stderr.String(), "queue jobs: queue empty (0 of 1 items within 1s each)") {
		t.Errorf("a get before the due time said:\n%s", empty.stderr)
	}
	if got := time.Now(); got.After(t0.Add(delay)) {
		t.Fatalf("the get before the due time ended %v after it: too slow to tell", got.Sub(t0.Add(delay)))
	}
	if listed.Before(t0.Add(delay)) {
		var got []string
		for _, p := range list.Delayed {
			if p.Queue == "jobs" {
				got = append(got, p.ID)
				if p.Target != "procq.q.jobs" || p.Subject != "procq.sched.at.q.jobs."+p.ID || p.Due.Before(t0.Add(delay)) || p.Due.After(t1.Add(delay)) {
					t.Errorf("listed delayed item %+v, want target procq.q.jobs, due in [%s, %s]", p, t0.Add(delay), t1.Add(delay))
				}
			}
		}
		wantLines(t, got, ids)
	}

	// After it: the three, in order, once each, not early and not later
	// than 5 s after.
	get := e.start("consumer", "get", "jobs", "-n", "3", "--timeout", "20s")
	get.mustExit(0, exitWait)
	lines := schedLines(get.stdout)
	var got []string
	for _, l := range lines {
		got = append(got, l.text)
		if l.at.Before(t0.Add(delay)) || l.at.After(t1.Add(delay+5*time.Second)) {
			t.Errorf("item %s arrived at %s, want between %s and %s", l.text, l.at.Format(time.RFC3339Nano),
				t0.Add(delay).Format(time.RFC3339Nano), t1.Add(delay+5*time.Second).Format(time.RFC3339Nano))
		}
	}
	wantLines(t, got, items)

	// --at in the past: runs now, and says so.
	past := e.startIn(strings.NewReader("\"late\"\n"), "producer", "put", "jobs", "--at", "2020-01-01T00:00:00Z")
	past.mustExit(0, exitWait)
	t2 := time.Now()
	if ids := strings.Fields(past.stdout.String()); len(ids) != 1 || !schedIDRE.MatchString(ids[0]) {
		t.Errorf("put --at printed %q, want one id", ids)
	}
	wantLines(t, strings.Split(strings.TrimSpace(past.stderr.String()), "\n"), []string{
		"producer: --at 2020-01-01T00:00:00Z is in the past: runs now",
		"producer: put 1 delayed items on queue jobs, due at 2020-01-01T00:00:00Z",
	})
	late := e.start("consumer", "get", "jobs", "--timeout", "20s")
	late.mustExit(0, exitWait)
	if l := schedLines(late.stdout); len(l) != 1 || l[0].text != `"late"` || l[0].at.After(t2.Add(5*time.Second)) {
		t.Errorf("get after put --at in the past: %+v, want \"late\" within 5 s of the put", l)
	}
	// Nothing else: each item came once, and the bad puts put nothing.
	rest := e.start("consumer", "get", "jobs", "--timeout", "1s")
	rest.mustExit(1, exitWait)
	if rest.stdout.String() != "" {
		t.Errorf("the queue still held %q", rest.stdout)
	}
	for _, p := range e.schedListJSON().Delayed {
		if p.Queue == "jobs" {
			t.Errorf("still delayed on jobs: %+v", p)
		}
	}
}

// Cancel before firing, from Go: of two delayed items, two delayed tasks,
// two delayed ApplyAsync calls and a task cancelled by id, the cancelled
// ones never run and the others run once after their time.
func schedCancel(t *testing.T, e *env, c *proc) {
	const delay = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := e.schedClient(ctx, t)
	q, err := client.Queue(ctx, "cancelq", 0)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := client.Pool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	keep, err := procq.Put(ctx, q, "keep", procq.In(delay))
	if err != nil {
		t.Fatal(err)
	}
	drop, err := procq.Put(ctx, q, "drop", procq.In(delay))
	if err != nil {
		t.Fatal(err)
	}
	now, err := procq.Put(ctx, q, "now")
	if err != nil {
		t.Fatal(err)
	}
	kept, err := pool.Submit(ctx, demo.KindMessage, demo.MessageArgs{Text: "cancel: kept"}, procq.In(delay))
	if err != nil {
		t.Fatal(err)
	}
	gone, err := pool.Submit(ctx, demo.KindMessage, demo.MessageArgs{Text: "cancel: cancelled"}, procq.In(delay))
	if err != nil {
		t.Fatal(err)
	}
	byID, err := pool.Submit(ctx, demo.KindMessage, demo.MessageArgs{Text: "cancel: cancelled by id"}, procq.In(delay))
	if err != nil {
		t.Fatal(err)
	}
	sq, err := procq.ApplyAsync[demo.SquareArgs, int64](ctx, pool, demo.KindSquare, demo.SquareArgs{X: 7}, procq.In(delay))
	if err != nil {
		t.Fatal(err)
	}
	sqGone, err := procq.ApplyAsync[demo.SquareArgs, int64](ctx, pool, demo.KindSquare, demo.SquareArgs{X: 8}, procq.In(delay))
	if err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	for _, err := range []error{drop.Cancel(ctx), gone.Cancel(ctx), client.CancelTask(ctx, byID.ID()), sqGone.Cancel(ctx)} {
		if err != nil {
			t.Fatalf("cancel before firing: %v", err)
		}
	}
	cancelled := time.Now()
	if cancelled.After(t0.Add(delay)) {
		t.Fatalf("the cancels ended %v after the due time: too slow to tell", cancelled.Sub(t0.Add(delay)))
	}
	if err := drop.Cancel(ctx); !errors.Is(err, procq.ErrFired) {
		t.Errorf("a second Cancel: %v, want ErrFired", err)
	}
	if err := now.Cancel(ctx); !errors.Is(err, procq.ErrNotDelayed) || now.ID() != "" || !now.Due().IsZero() {
		t.Errorf("Cancel of an item put at once: %v (id %q, due %v), want ErrNotDelayed", err, now.ID(), now.Due())
	}
	for _, d := range []*procq.Task{keep, drop, kept, gone, byID} {
		if !schedIDRE.MatchString(d.ID()) || d.Due().Before(t0.Add(delay)) || d.Due().After(t1.Add(delay)) {
			t.Errorf("delayed task %q due %s, want a nuid due in [%s, %s]", d.ID(), d.Due(), t0.Add(delay), t1.Add(delay))
		}
	}
	if !schedIDRE.MatchString(sq.ID()) || sq.ID() == sqGone.ID() {
		t.Errorf("ApplyAsync ids %q and %q", sq.ID(), sqGone.ID())
	}
	pending, err := client.PendingTasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range pending {
		ids = append(ids, p.ID)
	}
	for _, id := range []string{keep.ID(), kept.ID(), sq.ID()} {
		if !slices.Contains(ids, id) {
			t.Errorf("pending tasks %q lack %s, not fired yet", ids, id)
		}
	}
	for _, id := range []string{drop.ID(), gone.ID(), byID.ID(), sqGone.ID()} {
		if slices.Contains(ids, id) {
			t.Errorf("pending tasks still list the cancelled %s", id)
		}
	}

	// The items: "now" at once, then "keep" after its time; never "drop".
	get := e.start("consumer", "get", "cancelq", "-n", "2", "--timeout", "20s")

	// The tasks: the kept one and the kept ApplyAsync run once after
	// their time; the cancelled ones never.
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	if v, err := sq.Get(sctx); err != nil || v != 49 {
		t.Errorf("the delayed ApplyAsync: %v, %v, want 49", v, err)
	}
	if _, err := sqGone.Get(sctx); !errors.Is(err, procq.ErrCancelled) {
		t.Errorf("the cancelled ApplyAsync's Get: %v, want ErrCancelled", err)
	}
	schedWait(t, 20*time.Second, "the kept task runs", func() bool { return len(schedGot(c, "cancel: kept")) > 0 })
	get.mustExit(0, exitWait)
	lines := schedLines(get.stdout)
	if len(lines) != 2 || lines[0].text != `"now"` || lines[1].text != `"keep"` || lines[1].at.Before(t0.Add(delay)) {
		t.Errorf("got items %+v, want \"now\", then \"keep\" after %s", lines, t0.Add(delay))
	}
	// Nothing more comes: the getter waits past the due time by a second.
	rest := e.start("consumer", "get", "cancelq", "--timeout", "1s")
	rest.mustExit(1, exitWait)
	if rest.stdout.String() != "" {
		t.Errorf("the cancelled item came: %q", rest.stdout)
	}
	if at := schedGot(c, "cancel: kept"); len(at) != 1 || at[0].Before(t0.Add(delay)) || at[0].After(t1.Add(delay+5*time.Second)) {
		t.Errorf("the kept task ran at %v, want once in [%s, %s]", at, t0.Add(delay), t1.Add(delay+5*time.Second))
	}
	for _, text := range []string{"cancel: cancelled", "cancel: cancelled by id"} {
		if n := len(schedGot(c, text)); n != 0 {
			t.Errorf("the cancelled task %q ran %d times", text, n)
		}
	}
	if err := pool.Close(sctx); err != nil {
		t.Errorf("pool close: %v", err)
	}
}

// A periodic schedule: "--every 1s" with one consumer running fires once a
// second, each firing its own task (its own claim in PROCQ_FIRED, a
// consecutive second), as many as the seconds it lived, ±1; list shows it
// with its next firing ahead, run fires one extra, remove stops it and a
// second remove fails naming it. Bad specs exit 2 and create nothing.
func schedPeriodic(t *testing.T, e *env, c *proc) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bad := []struct {
		name string
		args []string
		says string
	}{
		{"bad.name", []string{"--every", "1s"}, "bad schedule: name: "},
		{"bad*", []string{"--every", "1s"}, "bad schedule: name: "},
		{"bad>", []string{"--every", "1s"}, "bad schedule: name: "},
		{"badcron", []string{"--cron", "not a cron"}, `bad schedule: cron: "not a cron": `},
		{"badtz", []string{"--cron", "0 * * * * *", "--tz", "Mars/Olympus"}, `bad schedule: tz: unknown time zone "Mars/Olympus"`},
		{"fast", []string{"--every", "500ms"}, "bad schedule: every: 500ms is under the broker's shortest interval, 1s"},
		{"both", []string{"--cron", "* * * * * *", "--every", "1s"}, "give --cron or --every, not both"},
	}
	var bads []*proc
	for _, b := range bad {
		bads = append(bads, e.start("broker", append([]string{"schedule", "add", b.name, "--queue", "demo", "--kind", "message",
			"--args", `{"text":"bad"}`}, b.args...)...))
	}

	tAdd := time.Now()
	add := e.schedRun(0, "broker", "schedule", "add", "tick", "--queue", "demo", "--kind", "message",
		"--args", `{"text":"tick"}`, "--every", "1s")
	if !regexp.MustCompile(`^schedule tick added: every 1s task message on queue demo, next at \S+\n$`).MatchString(add.stdout.String()) {
		t.Errorf("add said %q", add.stdout)
	}
	before := time.Now()
	l := e.schedListJSON()
	tick := l.schedNamed("tick")
	if tick == nil {
		t.Fatalf("list does not show tick: %+v", l)
	}
	if tick.Queue != "demo" || tick.Kind != "message" || tick.Every != time.Second || tick.Cron != "" || tick.TZ != "" ||
		schedCompact(tick.Args) != `{"text":"tick"}` || tick.Created.Before(tAdd.Add(-time.Second)) || tick.Created.After(before) {
		t.Errorf("list shows %+v", *tick)
	}
	if !tick.Next.After(before) || tick.Next.After(time.Now().Add(2*time.Second)) {
		t.Errorf("list shows next %s, want in the second ahead of %s", tick.Next, before)
	}
	again := e.schedRun(1, "broker", "schedule", "add", "tick", "--queue", "demo", "--kind", "message", "--every", "2s")
	if !strings.Contains(again.stderr.String(), "schedule tick: a schedule of that name exists; remove it first") {
		t.Errorf("a second add said:\n%s", again.stderr)
	}

	for i, p := range bads {
		p.mustExit(2, exitWait)
		if !strings.Contains(p.stderr.String(), bad[i].says) {
			t.Errorf("schedule add %s %v said:\n%s\nwant %q", bad[i].name, bad[i].args, p.stderr, bad[i].says)
		}
	}

	// Let it fire for a while, fire it once by hand, then remove it.
	schedWait(t, 30*time.Second, "the schedule fires 5 times", func() bool { return len(schedGot(c, "tick")) >= 5 })
	run := e.schedRun(0, "broker", "schedule", "run", "tick")
	m := regexp.MustCompile(`^schedule tick fired now: task (tick\.run-[0-9A-Za-z]{22})\n$`).FindStringSubmatch(run.stdout.String())
	if m == nil {
		t.Errorf("run said %q", run.stdout)
	}
	schedWait(t, 30*time.Second, "the run and one more firing", func() bool { return len(schedGot(c, "tick")) >= 7 })
	tRemove := time.Now()
	rm := e.schedRun(0, "broker", "schedule", "remove", "tick")
	removed := time.Now()
	if rm.stdout.String() != "schedule tick removed\n" {
		t.Errorf("remove said %q", rm.stdout)
	}
	rm2 := e.schedRun(1, "broker", "schedule", "remove", "tick")
	if !strings.Contains(rm2.stderr.String(), "schedule tick: no schedule of that name") {
		t.Errorf("a second remove said:\n%s", rm2.stderr)
	}
	after := e.schedListJSON()
	for _, name := range append([]string{"tick"}, "bad.name", "bad*", "bad>", "badcron", "badtz", "fast", "both") {
		if s := after.schedNamed(name); s != nil {
			t.Errorf("list shows %s: %+v", name, *s)
		}
	}
	settle := removed.Add(time.Second)
	time.Sleep(time.Until(settle.Add(time.Second)))

	// Count: one line per firing, no more after the removal has settled.
	ticks := schedGot(c, "tick")
	for _, at := range ticks {
		if at.After(settle) {
			t.Errorf("a tick ran at %s, %v after the schedule was removed", at.Format(time.RFC3339Nano), at.Sub(removed))
		}
	}
	keys := schedFiredKeys(ctx, t, e.js(t), "demo", "tick.*")
	var nexts []int64
	runs := 0
	for _, k := range keys {
		switch {
		case strings.HasPrefix(k, "tick.next-"):
			n, err := strconv.ParseInt(strings.TrimPrefix(k, "tick.next-"), 10, 64)
			if err != nil {
				t.Errorf("claim %s", k)
			}
			nexts = append(nexts, n)
		case m != nil && k == m[1]:
			runs++
		default:
			t.Errorf("claim %s is no firing of tick", k)
		}
	}
	if runs != 1 {
		t.Errorf("claims %q: the run's task claimed %d times, want once", keys, runs)
	}
	// Each firing's claim names its next firing: consecutive seconds, none
	// missing, each one once.
	for i := 1; i < len(nexts); i++ {
		if nexts[i] != nexts[i-1]+1 {
			t.Errorf("firings' next times %v are not consecutive seconds", nexts)
			break
		}
	}
	if len(ticks) != len(nexts)+runs {
		t.Errorf("%d tick lines for %d firings and %d run: a firing ran twice or not at all", len(ticks), len(nexts), runs)
	}
	// As many firings as whole seconds the schedule lived, ±1.
	lo := math.Floor(tRemove.Sub(tick.Created).Seconds()) - 1
	hi := math.Ceil(removed.Sub(tick.Created).Seconds()) + 1
	t.Logf("tick: %d firings over %.1f-%.1f s (created %s, removed in [%s, %s])", len(nexts),
		tRemove.Sub(tick.Created).Seconds(), removed.Sub(tick.Created).Seconds(),
		tick.Created.Format(time.RFC3339Nano), tRemove.Format(time.RFC3339Nano), removed.Format(time.RFC3339Nano))
	if n := float64(len(nexts)); n < lo || n > hi {
		t.Errorf("%d firings, want %v to %v for the seconds the schedule lived", len(nexts), lo, hi)
	}
	if len(nexts) > 0 {
		first := time.Unix(nexts[0], 0)
		if d := first.Sub(tick.Created); d < time.Second || d > 3*time.Second {
			t.Errorf("first firing's next %s, %v after the schedule was created", first, d)
		}
	}
}

// A standalone broker killed with kill -9 while five delayed tasks and a
// schedule wait in it, restarted on the same store: each delayed task
// runs exactly once, and the schedule goes on firing, each firing once.
func TestScheduleSurvivesBrokerKill(t *testing.T) {
	t.Parallel()
	const delay = 4 * time.Second
	e := newEnv(t, anyPort).set("PROCQ_BROKER_EMBEDDED", "false", "PROCQ_BROKER_CONNECT_TIMEOUT", "60s")
	b := e.startBroker()
	e.schedRun(0, "broker", "schedule", "add", "beat", "--kind", "message", "--args", `{"text":"beat"}`, "--every", "1s")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := e.schedClient(ctx, t)
	pool, err := client.Pool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	var ids []string
	for i := range 5 {
		d, err := pool.Submit(ctx, demo.KindMessage, demo.MessageArgs{Text: fmt.Sprintf("late-%d", i)}, procq.In(delay))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID())
	}
	t1 := time.Now()
	if err := pool.Close(ctx); err != nil {
		t.Fatal(err)
	}
	client.Close()

	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b.wait(10 * time.Second)
	killed := time.Now()
	time.Sleep(500 * time.Millisecond)
	b = e.startBroker()
	restarted := time.Now()
	t.Logf("broker killed %v after the puts, back %v later; the tasks are due %v after the puts",
		killed.Sub(t1).Round(time.Millisecond), time.Since(killed).Round(time.Millisecond), delay)
	c := e.start("consumer", "--name", "C-1")

	late := func() bool {
		for i := range 5 {
			if len(schedGot(c, fmt.Sprintf("late-%d", i))) == 0 {
				return false
			}
		}
		return true
	}
	// The schedule fires on: firings whose claims name a next firing
	// after the restart.
	js := e.js(t)
	since := func() int {
		n := 0
		for _, k := range schedFiredKeys(ctx, t, js, "demo", "beat.*") {
			if next, err := strconv.ParseInt(strings.TrimPrefix(k, "beat.next-"), 10, 64); err == nil && next > restarted.Unix()+1 {
				n++
			}
		}
		return n
	}
	schedWait(t, 30*time.Second, "every delayed task runs, and the schedule fires 3 times after the restart", func() bool {
		return late() && since() >= 3
	})
	e.schedRun(0, "broker", "schedule", "remove", "beat")
	time.Sleep(time.Second) // room for a second run
	c.stop()

	var latest time.Duration
	for i := range 5 {
		at := schedGot(c, fmt.Sprintf("late-%d", i))
		if len(at) != 1 {
			t.Errorf("late-%d (%s) ran %d times, want once", i, ids[i], len(at))
			continue
		}
		if at[0].Before(t0.Add(delay)) {
			t.Errorf("late-%d ran at %s, before its time %s", i, at[0], t0.Add(delay))
		}
		latest = max(latest, at[0].Sub(t1.Add(delay)))
	}
	t.Logf("the delayed tasks ran up to %v after their time (the task stream's source from %s resumes some seconds after a restart)",
		latest.Round(time.Millisecond), protocol.SchedStream)
	keys := schedFiredKeys(ctx, t, js, "demo", "beat.*")
	if n := len(schedGot(c, "beat")); n != len(keys) || n < 3 {
		t.Errorf("%d beat lines for %d firings claimed (%q): a firing ran twice or not at all", n, len(keys), keys)
	}
	if claimed := schedFiredKeys(ctx, t, js, "demo", "*"); len(slices.DeleteFunc(claimed, func(k string) bool { return !slices.Contains(ids, k) })) != 5 {
		t.Errorf("claims of the delayed tasks %q, want their 5 ids %q", claimed, ids)
	}
	t.Logf("second copies dropped: %d", e.logCount("consumer-C-1.log", regexp.MustCompile(`second copy of a fired task dropped`)))
	b.stop()
}

// A task stream full (queue.max_messages 5) when ten delayed tasks fire:
// the firings wait in PROCQ_SCHED, and once a consumer makes room all 15
// tasks run, each exactly once.
func TestScheduleFullQueueLosesNothing(t *testing.T) {
	t.Parallel()
	const delay = 1500 * time.Millisecond
	e := newEnv(t, anyPort).set("PROCQ_BROKER_EMBEDDED", "false", "PROCQ_QUEUE_MAX_MESSAGES", "5")
	b := e.startBroker()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := e.schedClient(ctx, t)
	pool, err := client.Pool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for i := range 5 {
		texts = append(texts, fmt.Sprintf("now-%d", i))
		if _, err := pool.Submit(ctx, demo.KindMessage, demo.MessageArgs{Text: texts[i]}); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now()
	for i := range 10 {
		texts = append(texts, fmt.Sprintf("due-%d", i))
		if _, err := pool.Submit(ctx, demo.KindMessage, demo.MessageArgs{Text: texts[5+i]}, procq.In(delay)); err != nil {
			t.Fatal(err)
		}
	}
	t1 := time.Now()
	js := e.js(t)
	if n := streamMsgs(t, js, protocol.TasksStream); n != 5 {
		t.Fatalf("the task stream holds %d tasks, want 5 (full)", n)
	}
	// The delayed tasks come due while the stream is full.
	time.Sleep(time.Until(t1.Add(delay + 1500*time.Millisecond)))
	if n := streamMsgs(t, js, protocol.TasksStream); n != 5 {
		t.Errorf("the task stream holds %d tasks, want 5 (max_messages)", n)
	}
	pending, err := client.PendingTasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("while full: %d delayed tasks not fired, PROCQ_SCHED holds %d messages; the task stream's source: %s",
		len(pending), streamMsgs(t, js, protocol.SchedStream), sourceState(t, js, protocol.TasksStream))

	c := e.start("consumer", "--name", "C-1")
	all := func() bool {
		for _, text := range texts {
			if len(schedGot(c, text)) == 0 {
				return false
			}
		}
		return true
	}
	started := time.Now()
	for deadline := started.Add(60 * time.Second); !all(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			// Where the firings are: still in PROCQ_SCHED (the source
			// waiting), in the task stream, or in neither.
			t.Fatalf("all 15 tasks run: not within 60s; PROCQ_SCHED holds %d messages, the task stream %d; its source: %s",
				streamMsgs(t, js, protocol.SchedStream), streamMsgs(t, js, protocol.TasksStream), sourceState(t, js, protocol.TasksStream))
		}
	}
	t.Logf("all 15 ran %v after the consumer started", time.Since(started).Round(time.Millisecond))
	time.Sleep(time.Second) // room for a duplicate
	c.stop()
	for _, text := range texts {
		at := schedGot(c, text)
		if len(at) != 1 {
			t.Errorf("%s ran %d times, want once", text, len(at))
		}
		if strings.HasPrefix(text, "due-") && len(at) > 0 && at[0].Before(t0.Add(delay)) {
			t.Errorf("%s ran at %s, before its time", text, at[0])
		}
	}
	if n := streamMsgs(t, js, protocol.TasksStream); n != 0 {
		t.Errorf("the task stream still holds %d tasks", n)
	}
	// PROCQ_SCHED drops a firing once the task stream's source has taken
	// it on, which lags the task's run (by a second or two, more on a busy
	// machine): wait for it, within a bound that no lag reaches.
	drain := time.Now()
	n := streamMsgs(t, js, protocol.SchedStream)
	for n != 0 && time.Since(drain) < 30*time.Second {
		time.Sleep(50 * time.Millisecond)
		n = streamMsgs(t, js, protocol.SchedStream)
	}
	if n != 0 {
		t.Errorf("PROCQ_SCHED still holds %d messages 30s after the consumer stopped", n)
	} else {
		t.Logf("PROCQ_SCHED empty %v after the consumer stopped", time.Since(drain).Round(time.Millisecond))
	}
	if err := pool.Close(ctx); err != nil {
		t.Errorf("pool close: %v", err)
	}
	client.Close() // while the broker is there to flush to
	b.stop()
}

// sourceState says how the sources of stream name are doing: their lag,
// when each was last active and any error.
func sourceState(t *testing.T, js jetstream.JetStream, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, si := range s.CachedInfo().Sources {
		e := "none"
		if si.Error != nil {
			e = si.Error.Error()
		}
		out = append(out, fmt.Sprintf("%s seen up to sequence %d, lag %d, active %v ago, error %s", si.Name, si.Seq, si.Lag, si.Active, e))
	}
	return strings.Join(out, "; ")
}

// schedPoolLater: producer pool --in starts its consumers and takes its
// map's lease at once (broker status shows the map, nothing submitted),
// and submits at the time: exact results in order after it. The map waits
// 10 s, so that a status process has time to run, however busy the
// machine, before the map starts and ends.
func schedPoolLater(t *testing.T, e *env) {
	const in = 10 * time.Second
	start := time.Now()
	p := e.start("producer", "pool", "--kind", "square", "--inputs", "1..6", "--processes", "2", "--sleep", "0s", "--in", in.String())
	var lease ops.MapStatus
	seen := false
	schedWait(t, 60*time.Second, "broker status shows the waiting map's lease, or the map ends", func() bool {
		ended := !p.running()
		st := e.start("broker", "status", "--json")
		st.mustExit(0, exitWait)
		var s ops.Status
		if err := json.Unmarshal([]byte(st.stdout.String()), &s); err != nil {
			t.Fatalf("status --json: %v", err)
		}
		for _, m := range s.Maps {
			if m.Queue == "later" {
				lease, seen = m, true
				return true
			}
		}
		return ended
	})
	if !seen {
		t.Errorf("broker status never showed the map's lease while it waited (%v, --in %v)", time.Since(start), in)
	}
	if at := time.Since(start); at < in && lease.Submitted != 0 {
		t.Errorf("%v after the start, before the map's time, its lease says %d inputs submitted, want 0", at, lease.Submitted)
	}
	p.mustExit(0, exitWait)
	if time.Since(start) < in {
		t.Errorf("the map ended %v after its start, before its time (--in %v)", time.Since(start), in)
	}
	out := p.stdout.String()
	// The producer counts --in from its own start and says, once its
	// consumers are up, when the map starts (to the second) and how long
	// that is from then: not before the test started it plus --in, not
	// after the first result, and at most --in away.
	m := regexp.MustCompile(`(?m)^Pool: the map starts at (\S+Z) \(in (\d+)s\)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no start line in:\n%s", out)
	}
	at, err := time.Parse(time.RFC3339, m[1])
	if err != nil {
		t.Fatalf("start line: %v", err)
	}
	first := p.stdout.firstAfter(start, squareRE)
	if at.Before(start.Add(in-time.Second)) || first.IsZero() || at.After(first) {
		t.Errorf("the map starts at %s, want from %s (the start plus --in) to the first result, %s",
			at, start.Add(in).Truncate(time.Second).UTC(), first.UTC())
	}
	if n, _ := strconv.Atoi(m[2]); n > int(in/time.Second) {
		t.Errorf("start line %q: more than --in %v away", m[0], in)
	}
	wantSquares(t, out, 6)
}
