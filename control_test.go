package procq_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/procq/procq"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/schedule"
	"github.com/procq/procq/task"
)

// starts records when each input of the "stamp" kind started.
type starts struct {
	mu sync.Mutex
	at map[string][]time.Time
}

func (s *starts) of(id string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.at[id])
}

// stampWorker serves "stamp" (records its start, returns its argument) in
// this process on the client's queue until the test ends.
func stampWorker(t *testing.T, c *procq.Client) *starts {
	t.Helper()
	s := &starts{at: map[string][]time.Time{}}
	reg := task.NewRegistry()
	task.MustRegister(reg, "stamp", func(ctx context.Context, id string) (string, error) {
		s.mu.Lock()
		s.at[id] = append(s.at[id], time.Now())
		s.mu.Unlock()
		return id, nil
	})
	runWorker(t, c, reg)
	return s
}

// waitFor polls cond every 50ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A delayed task runs once, not before its time and within a bound after
// it; a cancelled one never runs, and its result is ErrCancelled.
func TestDelayedApplyAndCancel(t *testing.T) {
	t.Parallel() // waits on the broker's timers, on a queue of its own
	c := connect(t, "delayed")
	ctx := ctxT(t)
	s := stampWorker(t, c)
	p, err := c.Pool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)

	due := time.Now().Add(1500 * time.Millisecond)
	soon, err := procq.ApplyAsync[string, string](ctx, p, "stamp", "soon", procq.At(due))
	if err != nil {
		t.Fatal(err)
	}
	never, err := procq.ApplyAsync[string, string](ctx, p, "stamp", "never", procq.In(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if soon.ID() == "" || never.ID() == "" || soon.ID() == never.ID() {
		t.Fatalf("task ids %q, %q: want two distinct ids", soon.ID(), never.ID())
	}
	pending, err := c.PendingTasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, p := range pending {
		ids[p.ID] = p.Queue
	}
	if ids[soon.ID()] != "delayed" || ids[never.ID()] != "delayed" {
		t.Fatalf("pending tasks %+v: want both delayed tasks, on queue delayed", pending)
	}
	if err := never.Cancel(ctx); err != nil {
		t.Fatalf("Cancel before firing: %v", err)
	}
	if _, err := never.Get(ctx); !errors.Is(err, procq.ErrCancelled) {
		t.Fatalf("Get of a cancelled task: %v, want ErrCancelled", err)
	}
	if err := never.Cancel(ctx); err != nil {
		t.Fatalf("second Cancel: %v, want nil (cancelled already)", err)
	}
	got, err := soon.Get(ctx)
	if err != nil || got != "soon" {
		t.Fatalf("Get = %q, %v; want soon", got, err)
	}
	at := s.of("soon")
	if len(at) != 1 {
		t.Fatalf("soon ran %d times, want once", len(at))
	}
	if late := at[0].Sub(due); late < 0 || late > 3*time.Second {
		t.Errorf("soon started %v after its due time, want within [0, 3s]", late)
	}
	if err := soon.Cancel(ctx); !errors.Is(err, procq.ErrFinished) {
		t.Errorf("Cancel after it ran: %v, want ErrFinished", err)
	}
	if len(s.of("never")) != 0 {
		t.Errorf("the cancelled task ran")
	}
	if n, err := procq.ApplyAsync[string, string](ctx, p, "stamp", "now"); err != nil {
		t.Fatal(err)
	} else if _, err := n.Get(ctx); err != nil {
		t.Fatal(err)
	} else if err := n.Cancel(ctx); !errors.Is(err, procq.ErrFinished) {
		t.Errorf("Cancel of a task that ran: %v, want ErrFinished", err)
	}
}

// A periodic schedule fires at its interval, each firing once; bad
// specs create nothing; a firing that reaches the queue twice runs once.
func TestPeriodicSchedule(t *testing.T) {
	t.Parallel() // waits on the broker's timers, on a queue of its own
	c := connect(t, "periodic")
	ctx := ctxT(t)
	s := stampWorker(t, c)

	for _, bad := range []struct {
		name string
		when procq.When
	}{
		{"bad.name", procq.Every(time.Second)},
		{"fast", procq.Every(500 * time.Millisecond)},
		{"cron", procq.Cron("every tuesday")},
		{"zone", procq.Cron("0 0 * * * *").InZone("Mars/Olympus")},
		{"zoned-every", procq.Every(time.Minute).InZone("Europe/Berlin")},
	} {
		if err := c.Schedule(ctx, bad.name, "stamp", "x", bad.when); !errors.Is(err, schedule.ErrBadSpec) {
			t.Errorf("Schedule %s: %v, want ErrBadSpec", bad.name, err)
		}
	}
	if err := c.Schedule(ctx, "tick", "stamp", "tick", procq.Every(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.Schedule(ctx, "tick", "stamp", "tick", procq.Every(time.Second)); !errors.Is(err, schedule.ErrExists) {
		t.Fatalf("second Schedule of a name: %v, want ErrExists", err)
	}
	list, err := c.Schedules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "tick" || list[0].Queue != "periodic" || list[0].Every != time.Second ||
		list[0].Kind != "stamp" || list[0].Next.Before(time.Now().Add(-time.Second)) {
		t.Fatalf("Schedules = %+v, want tick alone", list)
	}
	waitFor(t, 10*time.Second, "three firings of tick", func() bool { return len(s.of("tick")) >= 3 })
	if err := c.Unschedule(ctx, "tick"); err != nil {
		t.Fatal(err)
	}
	fired := len(s.of("tick"))
	time.Sleep(2500 * time.Millisecond)
	if n := len(s.of("tick")); n > fired+1 {
		t.Errorf("tick fired %d times after it was removed", n-fired)
	}
	if err := c.Unschedule(ctx, "tick"); !errors.Is(err, schedule.ErrNotFound) {
		t.Errorf("Unschedule of a removed schedule: %v, want ErrNotFound", err)
	}
	at := s.of("tick")
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < 500*time.Millisecond {
			t.Errorf("firings %d and %d of an every-1s schedule %v apart: a firing ran twice?", i-1, i, gap)
		}
	}

	// The same firing twice in PROCQ_SCHED's fire subject: both copies are
	// sourced into the task stream, as after a broker killed while
	// sourcing; the second is dropped.
	js := c.JetStream()
	id := "dup." + nuid.Next() // claims outlive the test: -count=N runs it anew
	for range 2 {
		m := nats.NewMsg(protocol.FireSubject(protocol.PeriodicTarget("periodic", "dup")))
		m.Header.Set(protocol.HeaderKind, "stamp")
		m.Header.Set(protocol.HeaderTaskID, id)
		m.Header.Set(protocol.HeaderSchedule, "dup")
		m.Data = []byte(`"dup"`)
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	m := nats.NewMsg(protocol.FireSubject(protocol.PeriodicTarget("periodic", "dup")))
	m.Header.Set(protocol.HeaderKind, "stamp")
	m.Data = []byte(`"after"`)
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the task after the duplicate", func() bool { return len(s.of("after")) == 1 })
	if n := len(s.of("dup")); n != 1 {
		t.Errorf("a firing sourced twice ran %d times, want once", n)
	}
}

// lockedBuffer is an io.Writer safe for the consumer processes' output.
type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

// A run's sentinels wait for its delayed tasks (the sentinel table's
// "delayed tasks not fired" row): Close of a pool of consumer processes
// returns only after the delayed task fired and ran, and the consumer
// took its sentinel after it; a cancelled one holds nothing up.
func TestSentinelsWaitForDelayedTasks(t *testing.T) {
	t.Parallel() // waits on the broker's timers, on a queue of its own
	c := connect(t, "delayedrun")
	ctx := ctxT(t)
	var out lockedBuffer
	p, err := c.Pool(ctx, procq.Processes(1), procq.Stdout(&out))
	if err != nil {
		t.Fatal(err)
	}
	due := time.Now().Add(2 * time.Second)
	if _, err := p.Submit(ctx, "message", map[string]string{"text": "later"}, procq.At(due)); err != nil {
		t.Fatal(err)
	}
	gone, err := p.Submit(ctx, "message", map[string]string{"text": "never"}, procq.In(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := gone.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Submit(ctx, "message", map[string]string{"text": "now"}); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if time.Now().Before(due) {
		t.Errorf("Close returned before the delayed task was due")
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		"Consumer C-1: Got 'now' from queue",
		"Consumer C-1: Got 'later' from queue",
		"Consumer C-1: Received sentinel, exiting.",
	}
	var got []string
	for _, l := range lines {
		if strings.HasPrefix(l, "Consumer C-1: ") {
			got = append(got, l)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("consumer output:\n%s\nwant the lines %q in that order", out.String(), want)
	}
}

// Terminate removes a pool's delayed tasks that have not fired: nothing
// of the pool fires later for nobody.
func TestTerminateRemovesDelayedTasks(t *testing.T) {
	c := connect(t, "delayedterm")
	ctx := ctxT(t)
	p, err := c.Pool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h, err := procq.ApplyAsync[string, string](ctx, p, "stamp", "late", procq.In(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Terminate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Get(ctx); err == nil {
		t.Fatal("Get of a terminated pool's delayed task: no error")
	}
	pending, err := c.PendingTasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pending {
		if p.ID == h.ID() {
			t.Fatalf("the delayed task %s is still pending after Terminate", h.ID())
		}
	}
}

// A task taken after its deadline never runs: its result errors.Is
// ErrDeadline (ApplyAsync, every input of a map with MapDeadline) and it
// is dead-lettered "deadline passed"; a deadline still ahead changes
// nothing.
func TestDeadline(t *testing.T) {
	c := connect(t, "deadline")
	ctx := ctxT(t)
	s := stampWorker(t, c)
	p, err := c.Pool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	late, err := procq.ApplyAsync[string, string](ctx, p, "stamp", "late", procq.Deadline(time.Now().Add(-time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := late.Get(ctx); !errors.Is(err, procq.ErrDeadline) || !strings.Contains(err.Error(), "deadline passed: due by ") {
		t.Errorf("Get of a task past its deadline: %v, want ErrDeadline", err)
	}
	inTime, err := procq.ApplyAsync[string, string](ctx, p, "stamp", "in time", procq.Deadline(time.Now().Add(time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := inTime.Get(ctx); err != nil || got != "in time" {
		t.Errorf("Get of a task within its deadline: %q, %v", got, err)
	}
	mp, err := c.Pool(ctx, procq.MapDeadline(time.Now().Add(-time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	defer mp.Close(ctx)
	_, err = procq.Map[string, string](ctx, mp, "stamp", []string{"m0", "m1", "m2"})
	var me *procq.MapError
	if !errors.As(err, &me) || len(me.Failed) != 3 {
		t.Fatalf("Map past its deadline: %v, want a MapError of 3 inputs", err)
	}
	for _, e := range me.Failed {
		if !errors.Is(e, procq.ErrDeadline) {
			t.Errorf("input error %v, want ErrDeadline", e)
		}
	}
	for _, id := range []string{"late", "m0", "m1", "m2"} {
		if n := len(s.of(id)); n != 0 {
			t.Errorf("%s ran %d times past its deadline", id, n)
		}
	}
	if n := len(s.of("in time")); n != 1 {
		t.Errorf("the task within its deadline ran %d times, want once", n)
	}
	dead, err := c.JetStream().Stream(ctx, "PROCQ_DEAD")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := countDeadlinePassed(ctx, dead); err != nil || n < 2 {
		t.Errorf("%d dead letters of queue deadline say deadline passed (%v), want the task and the map's chunk(s)", n, err)
	}
}

// countDeadlinePassed counts the dead letters of queue "deadline" whose
// reason is a passed deadline.
func countDeadlinePassed(ctx context.Context, dead jetstream.Stream) (int, error) {
	n := 0
	for seq := uint64(1); ; seq++ {
		m, err := dead.GetMsg(ctx, seq, jetstream.WithGetMsgSubject("procq.dead.deadline"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if strings.HasPrefix(m.Header.Get("Procq-Error"), "deadline passed") {
			n++
		}
		seq = m.Sequence
	}
}

// A Cancel that races the firing keeps its word: the broker fires a batch
// of due tasks after reading them, so a schedule deleted meanwhile may
// still fire; the cancelled task's claim drops that copy. Every task whose
// Cancel returned nil never runs; every other runs once.
func TestCancelRacingFiring(t *testing.T) {
	t.Parallel() // waits on the broker's timers, on a queue of its own
	c := connect(t, "cancelrace")
	ctx := ctxT(t)
	s := stampWorker(t, c)
	p, err := c.Pool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	const n = 300
	due := time.Now().Add(2 * time.Second)
	tasks := make([]*procq.Task, n)
	for i := range n {
		if tasks[i], err = p.Submit(ctx, "stamp", fmt.Sprint("r", i), procq.At(due)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Until(due) - 20*time.Millisecond)
	cancelled := make([]bool, n)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				err := tasks[i].Cancel(ctx)
				switch {
				case err == nil:
					cancelled[i] = true
				case !errors.Is(err, procq.ErrFired):
					t.Errorf("Cancel of r%d: %v", i, err)
				}
			}
		})
	}
	wg.Wait()
	kept := 0
	for i := range n {
		if !cancelled[i] {
			kept++
		}
	}
	waitFor(t, 20*time.Second, "every task not cancelled runs", func() bool {
		ran := 0
		for i := range n {
			if !cancelled[i] && len(s.of(fmt.Sprint("r", i))) > 0 {
				ran++
			}
		}
		return ran == kept
	})
	time.Sleep(time.Second) // a cancelled copy that would run, runs by now
	for i := range n {
		got := len(s.of(fmt.Sprint("r", i)))
		if cancelled[i] && got != 0 {
			t.Errorf("r%d ran %d times after its Cancel returned nil", i, got)
		}
		if !cancelled[i] && got != 1 {
			t.Errorf("r%d (Cancel: fired) ran %d times, want once", i, got)
		}
	}
	t.Logf("%d of %d cancelled before they ran", n-kept, n)
}
