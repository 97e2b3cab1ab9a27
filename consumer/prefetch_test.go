package consumer_test

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/procq/procq/consumer"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

func newWorker(t *testing.T, f *fixture, reg *task.Registry, name string) *consumer.Worker {
	t.Helper()
	w, err := consumer.New(consumer.Config{Name: name, FetchWait: time.Second, Out: f.out}, f.js, f.topo, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func runUntilSentinel(t *testing.T, ws ...*consumer.Worker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(ws))
	for i, w := range ws {
		wg.Go(func() { errs[i] = w.Run(ctx) })
	}
	wg.Wait()
	for i, w := range ws {
		if errs[i] != nil || !w.TookSentinel() {
			t.Errorf("worker %d: err %v, took sentinel %v", i, errs[i], w.TookSentinel())
		}
	}
}

func counting(kind string, n *atomic.Int64, sleep time.Duration) *task.Registry {
	reg := demo.Builtins()
	_ = reg.Register(kind, task.HandlerFunc(func(ctx context.Context, _ json.RawMessage) (json.RawMessage, error) {
		n.Add(1)
		time.Sleep(sleep)
		return json.RawMessage("null"), nil
	}))
	return reg
}

// With the default (adaptive) prefetch, a worker given 10,000 tiny tasks
// pulls deep: hundreds at a time, not one per round trip.
func TestAdaptivePrefetchDeepOnTinyTasks(t *testing.T) {
	const q, n = "tiny", 10000
	f := setupAck(t, q, 10*time.Second)
	f.startRun(t, q, "r1")
	for i := range n {
		m := &nats.Msg{Subject: protocol.WorkSubject(q, "r1"), Data: []byte(strconv.Itoa(i)), Header: nats.Header{}}
		m.Header.Set(protocol.HeaderKind, "tiny")
		m.Header.Set(protocol.HeaderRun, "r1")
		if _, err := f.js.PublishMsgAsync(m); err != nil {
			t.Fatal(err)
		}
		if (i+1)%500 == 0 || i == n-1 { // at most 500 in flight
			select {
			case <-f.js.PublishAsyncComplete():
			case <-time.After(30 * time.Second):
				t.Fatal("publishing tasks: no acknowledgement within 30s")
			}
		}
	}
	f.sentinel(t, q, "r1")
	var ran atomic.Int64
	w := newWorker(t, f, counting("tiny", &ran, 0), "W-1")
	runUntilSentinel(t, w)
	if ran.Load() != n {
		t.Errorf("ran %d tasks, want %d", ran.Load(), n)
	}
	if p := w.PeakPrefetch(); p < 100 {
		t.Errorf("peak prefetch %d on tiny tasks, want a deep one (at least 100)", p)
	}
}

// Long tasks keep the adaptive prefetch at one: two of them run on two
// consumers at once, one each, rather than both on the first.
func TestAdaptivePrefetchLongTasksSpread(t *testing.T) {
	const q = "long"
	f := setup(t, q)
	f.startRun(t, q, "r1")
	var ranA, ranB atomic.Int64
	a := newWorker(t, f, counting("slow", &ranA, 300*time.Millisecond), "W-A")
	b := newWorker(t, f, counting("slow", &ranB, 300*time.Millisecond), "W-B")
	done := make(chan struct{})
	go func() {
		defer close(done)
		runUntilSentinel(t, a, b)
	}()
	waitPulling(t, f, 2) // both idle and pulling before the work arrives
	for range 2 {
		f.publish(t, protocol.WorkSubject(q, "r1"), map[string]string{protocol.HeaderKind: "slow", protocol.HeaderRun: "r1"}, "1")
	}
	f.sentinel(t, q, "r1")
	f.sentinel(t, q, "r1")
	<-done
	if ranA.Load() != 1 || ranB.Load() != 1 {
		t.Errorf("worker A ran %d, B ran %d long tasks; want one each", ranA.Load(), ranB.Load())
	}
	if a.PeakPrefetch() != 1 || b.PeakPrefetch() != 1 {
		t.Errorf("peak prefetch A %d, B %d; want 1 for long tasks", a.PeakPrefetch(), b.PeakPrefetch())
	}
}

// A sentinel handed back again and again (work of its run is still being
// done elsewhere) is no task: its quick handling does not deepen the
// prefetch, which would let this worker hoard the next long tasks.
func TestSentinelHandbacksDoNotDeepenPrefetch(t *testing.T) {
	const q = "handback"
	f := setup(t, q)
	f.startRun(t, q, "r1")
	var ranA, ranB atomic.Int64
	a := newWorker(t, f, counting("slow", &ranA, time.Second), "W-A")
	cfg := consumer.Config{Name: "W-B", FetchWait: time.Second, Out: f.out, SentinelRetry: 10 * time.Millisecond}
	b, err := consumer.New(cfg, f.js, f.topo, counting("slow", &ranB, time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	// A takes the long task alone; then B meets the run's sentinels while
	// A's task is unfinished, and hands them back every 10ms for a second.
	f.publish(t, protocol.WorkSubject(q, "r1"), map[string]string{protocol.HeaderKind: "slow", protocol.HeaderRun: "r1"}, "1")
	done := make(chan struct{})
	go func() {
		defer close(done)
		runUntilSentinel(t, a)
	}()
	for ranA.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	f.sentinel(t, q, "r1")
	f.sentinel(t, q, "r1")
	runUntilSentinel(t, b)
	<-done
	if ranA.Load() != 1 || ranB.Load() != 0 {
		t.Fatalf("A ran %d, B ran %d; want 1 and 0", ranA.Load(), ranB.Load())
	}
	if p := b.PeakPrefetch(); p != 1 {
		t.Errorf("B's peak prefetch %d after handing sentinels back, want 1: it ran no task", p)
	}
}
