package consumer_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/procq/procq/consumer"
	"github.com/procq/procq/ops"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/schedule"
	"github.com/procq/procq/task"
)

// putLevel puts n tasks of kind "rec" on the run's subject of level p,
// their arguments "<p>-<i>".
func (f *fixture) putLevel(t *testing.T, queue, run string, p protocol.Priority, n int) {
	t.Helper()
	for i := range n {
		f.publish(t, protocol.LevelSubject(queue, run, p), map[string]string{protocol.HeaderKind: "rec",
			protocol.HeaderRun: run, protocol.HeaderIndex: strconv.Itoa(i)}, strconv.Quote(fmt.Sprintf("%s-%d", p, i)))
	}
}

// waitCounted waits, within 10 s, until each level's durable counts the
// tasks given for it as pending.
func (f *fixture) waitCounted(t *testing.T, want map[protocol.Priority]uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p, n := range want {
		for {
			ci, err := f.topo.Levels[p.Rank()].Info(t.Context())
			if err == nil && ci.NumPending == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the %s durable does not count %d pending tasks within 10s: %+v, %v", p, n, ci, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// recorder is a registry whose kind "rec" records its argument, in the
// order the tasks start, and calls hook (if set) before it returns.
type recorder struct {
	mu   sync.Mutex
	ran  []string
	hook func(arg string)
}

func (r *recorder) registry() *task.Registry {
	reg := task.NewRegistry()
	task.MustRegister(reg, "rec", func(_ context.Context, arg string) (struct{}, error) {
		r.mu.Lock()
		r.ran = append(r.ran, arg)
		r.mu.Unlock()
		if r.hook != nil {
			r.hook(arg)
		}
		return struct{}{}, nil
	})
	return reg
}

func (r *recorder) order() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ran)
}

func names(p protocol.Priority, from, to int) []string {
	var s []string
	for i := from; i < to; i++ {
		s = append(s, fmt.Sprintf("%s-%d", p, i))
	}
	return s
}

// Tasks of every level queued before the worker starts, the highest put
// last: the worker runs every high one first, then the default ones, then
// the low ones, each level in the order it was put. The run's sentinel,
// put first of all, waits for every level's tasks and for the run's
// delayed low-priority task, which fires after the others ran; only then
// is it taken.
func TestPrioritiesInOrderAndTheSentinelWaitsForEveryLevel(t *testing.T) {
	const q, run = "prio", "r1"
	f := setup(t, q)
	f.startRun(t, q, run)
	f.sentinel(t, q, run)
	f.putLevel(t, q, run, protocol.PriorityLow, 200)
	f.putLevel(t, q, run, protocol.PriorityDefault, 50)
	f.putLevel(t, q, run, protocol.PriorityHigh, 5)
	// The broker counts a stored task for a durable after the publish is
	// acknowledged, on a goroutine of its own: a no-wait pull right after
	// the put may find the level empty (0.2-0.7% of pulls measured on an
	// idle machine, more under load), and the worker would then take the
	// high tasks one at a time, beyond a window full of lower ones. What
	// this test asserts is the order of tasks waiting when the worker
	// starts, so it starts once the broker counts them all.
	f.waitCounted(t, map[protocol.Priority]uint64{protocol.PriorityHigh: 5, protocol.PriorityDefault: 50 + 1, protocol.PriorityLow: 200})
	late := nats.NewMsg(protocol.LevelSubject(q, run, protocol.PriorityLow))
	late.Header.Set(protocol.HeaderKind, "rec")
	late.Data = []byte(`"low-late"`)
	schedule.Delay(late, time.Now().Add(1500*time.Millisecond))
	if _, err := f.js.PublishMsg(t.Context(), late); err != nil {
		t.Fatal(err)
	}
	var r recorder
	w, logs, err := f.runLogged(t, r.registry(), consumer.Config{Name: "C-1", Prefetch: 64, SentinelRetry: 20 * time.Millisecond, Run: run})
	if err != nil || !w.TookSentinel() {
		t.Fatalf("Run: %v, took its sentinel %v\n%s", err, w.TookSentinel(), logs)
	}
	want := slices.Concat(names(protocol.PriorityHigh, 0, 5), names(protocol.PriorityDefault, 0, 50),
		names(protocol.PriorityLow, 0, 200), []string{"low-late"})
	if got := r.order(); !slices.Equal(got, want) {
		ci, _ := f.topo.Levels[protocol.PriorityHigh.Rank()].Info(t.Context())
		t.Errorf("ran %d tasks in the order\n%q\nwant %d:\n%q\nhigh durable: %+v\nworker log:\n%s", len(got), got, len(want), want, ci, logs)
	}
	info, err := f.topo.Tasks.Info(t.Context())
	if err != nil || info.State.Msgs != 0 {
		t.Errorf("the task stream holds %v messages after the sentinel (%v), want none", info.State.Msgs, err)
	}
}

// A worker holding a deep prefetch of low-priority tasks takes a
// high-priority task put meanwhile beyond its full window and runs it
// next, before the low ones it holds; then the rest in order, each once.
func TestHighOvertakesDeepPrefetchOfLow(t *testing.T) {
	const q, run, lows, blockAt = "overtake", "r1", 1000, 10
	f := setup(t, q)
	f.startRun(t, q, run)
	f.putLevel(t, q, run, protocol.PriorityLow, lows)
	running, release := make(chan struct{}), make(chan struct{})
	r := recorder{hook: func(arg string) {
		if arg == fmt.Sprintf("low-%d", blockAt) {
			close(running)
			<-release
		}
	}}
	w, err := consumer.New(consumer.Config{Name: "C-1", Prefetch: 100, Run: run, SentinelRetry: 20 * time.Millisecond,
		FetchWait: time.Second, Out: f.out}, f.js, f.topo, r.registry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-running:
	case err := <-done:
		t.Fatalf("worker ended before low-%d ran: %v", blockAt, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("low-%d not running within 20s", blockAt)
	}
	// The worker holds 100 lows now (one running, 99 waiting): its window
	// is full.
	t.Log("waiting for the worker to hold a full window of 100 low-priority tasks")
	waitHolding(t, w, 100)
	f.putLevel(t, q, run, protocol.PriorityHigh, 1)
	t.Log("waiting for the worker to take the high-priority task beyond its full window")
	waitHolding(t, w, 101)
	close(release)
	f.sentinel(t, q, run)
	if err := <-done; err != nil || !w.TookSentinel() {
		t.Fatalf("Run: %v, took its sentinel %v", err, w.TookSentinel())
	}
	want := slices.Concat(names(protocol.PriorityLow, 0, blockAt+1), names(protocol.PriorityHigh, 0, 1),
		names(protocol.PriorityLow, blockAt+1, lows))
	if got := r.order(); !slices.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Errorf("ran %d tasks, want %d; first difference at %d: got %q, want %q", len(got), len(want), i,
			got[i:min(i+3, len(got))], want[i:min(i+3, len(want))])
	}
}

// waitHolding waits up to 20 s for w to hold n messages, running or in
// its inbox.
func waitHolding(t *testing.T, w *consumer.Worker, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for w.InHand() != n {
		if time.Now().After(deadline) {
			t.Fatalf("the worker holds %d messages after 20s, want %d", w.InHand(), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A dead-lettered high-priority task is requeued on its own level.
func TestDeadHighRequeuedOnItsLevel(t *testing.T) {
	const q, run = "deadprio", "r1"
	f := setup(t, q)
	f.startRun(t, q, run)
	f.publish(t, protocol.LevelSubject(q, run, protocol.PriorityHigh), map[string]string{protocol.HeaderKind: "nope",
		protocol.HeaderRun: run}, `{}`)
	f.sentinel(t, q, run)
	var r recorder
	if err := f.run(t, r.registry(), consumer.Config{Name: "C-1", Run: run, SentinelRetry: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	dl, err := ops.OpenDeadLetters(ctx, f.js)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := dl.List(ctx, q)
	if err != nil || len(dead) != 1 || dead[0].Subject != protocol.LevelSubject(q, run, protocol.PriorityHigh) {
		t.Fatalf("dead letters %+v (%v), want the one high-priority task", dead, err)
	}
	if _, err := dl.Requeue(ctx, dead[0].ID); err != nil {
		t.Fatal(err)
	}
	for _, p := range protocol.Priorities() {
		ci, err := f.topo.Levels[p.Rank()].Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := uint64(0)
		if p == protocol.PriorityHigh {
			want = 1
		}
		if ci.NumPending != want {
			t.Errorf("%s durable: %d pending after the requeue, want %d", p, ci.NumPending, want)
		}
	}
}
