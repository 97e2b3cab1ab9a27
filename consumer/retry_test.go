package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/procq/procq/consumer"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// runLogged runs one worker until it stops by itself (sentinel, max tasks,
// initializer) and returns it, its log and its error.
func (f *fixture) runLogged(t *testing.T, reg *task.Registry, cfg consumer.Config) (*consumer.Worker, string, error) {
	t.Helper()
	logs := &lockedBuf{}
	cfg.Out = f.out
	cfg.FetchWait = time.Second
	w, err := consumer.New(cfg, f.js, f.topo, reg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = w.Run(ctx)
	if ctx.Err() != nil {
		t.Fatalf("worker %s did not stop by itself: %v\n%s", cfg.Name, ctx.Err(), logs)
	}
	return w, logs.String(), err
}

// putTasks publishes n tasks of kind for run, each with its index and the
// run's reply subject; args(i) is input i.
func (f *fixture) putTasks(t *testing.T, q, run, kind string, n int, args func(i int) string) {
	t.Helper()
	for i := range n {
		f.publish(t, protocol.WorkSubject(q, run), map[string]string{protocol.HeaderKind: kind, protocol.HeaderRun: run,
			protocol.HeaderIndex: strconv.Itoa(i), protocol.HeaderReply: protocol.ResultSubject(run)}, args(i))
	}
}

// A handler that asks for a retry twice, then succeeds, succeeds on its
// third delivery; the backoff between tries is in the log, and the handler
// sees its attempt number.
func TestRetryWithBackoff(t *testing.T) {
	const q = "retry"
	f := setup(t, q)
	var mu sync.Mutex
	var attempts []int
	reg := task.NewRegistry()
	task.MustRegister(reg, "flaky", func(ctx context.Context, x int) (int, error) {
		mu.Lock()
		attempts = append(attempts, task.Attempt(ctx))
		mu.Unlock()
		if task.Attempt(ctx) < 3 {
			return 0, task.Retry(fmt.Errorf("not yet (attempt %d)", task.Attempt(ctx)))
		}
		return 10 * x, nil
	})
	task.MustRegister(reg, "doomed", func(ctx context.Context, x int) (int, error) {
		return 0, task.Retry(errors.New("never works"))
	})
	f.putTasks(t, q, "r1", "flaky", 1, func(int) string { return "4" })
	f.publish(t, protocol.WorkSubject(q, "r1"), map[string]string{protocol.HeaderKind: "doomed", protocol.HeaderRun: "r1",
		protocol.HeaderIndex: "1", protocol.HeaderReply: protocol.ResultSubject("r1")}, "5")
	f.startRun(t, q, "r1")
	f.sentinel(t, q, "r1")

	start := time.Now()
	_, logs, err := f.runLogged(t, reg, consumer.Config{Name: "C-1", MaxDeliver: 3,
		RetryBackoff: 100 * time.Millisecond, RetryBackoffMax: 150 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Backoffs: 50-100 ms, then 75-150 ms (capped): at least 125 ms in all.
	if took := time.Since(start); took < 125*time.Millisecond {
		t.Errorf("three tries took %v, less than the smallest backoffs allow", took)
	}
	mu.Lock()
	if fmt.Sprint(attempts) != "[1 2 3]" {
		t.Errorf("handler saw attempts %v, want [1 2 3]", attempts)
	}
	mu.Unlock()
	// One answer per index: flaky's result, and doomed's last error.
	got := map[int]string{}
	for _, a := range answersOn(t, f, protocol.ResultSubject("r1")) {
		got[a.Index] += string(task.AppendOutcome(nil, a.Outcomes[0]))
	}
	if want := map[int]string{0: `{"result":40}`, 1: `{"error":"never works"}`}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("answers %v, want %v", got, want)
	}
	retries := regexp.MustCompile(`msg="task failed, retrying after backoff" .*task=flaky .*error="not yet \(attempt (\d)\)" backoff=(\S+) next_attempt=(\d)`).FindAllStringSubmatch(logs, -1)
	if len(retries) != 2 || retries[0][1] != "1" || retries[0][3] != "2" || retries[1][1] != "2" || retries[1][3] != "3" {
		t.Fatalf("retry log lines %q, want attempts 1 and 2, next 2 and 3, in:\n%s", retries, logs)
	}
	for _, r := range retries {
		if d, err := time.ParseDuration(r[2]); err != nil || d < 50*time.Millisecond || d > 150*time.Millisecond {
			t.Errorf("backoff %s outside [50ms, 150ms]", r[2])
		}
	}

	// The one that always asks for more: tried max_deliver times, then
	// answered with its last error (above) and dead-lettered with it.
	dl := deadLetters(t, f, q)
	if len(dl) != 1 || !strings.Contains(dl[0].Header.Get(protocol.HeaderError), "never works") || dl[0].Header.Get(protocol.HeaderDelivered) != "3" {
		for _, m := range dl {
			t.Logf("dead letter: %v", m.Header)
		}
		t.Fatalf("%d dead letters, want doomed's, after 3 deliveries", len(dl))
	}
	if n := strings.Count(logs, "task=doomed"); n < 2 {
		t.Errorf("doomed logged %d times, want its 2 retries at least", n)
	}
}

// A handler that panics gives its input an error; the worker goes on.
func TestPanicIsTheTasksError(t *testing.T) {
	const q = "panic"
	f := setup(t, q)
	reg := task.NewRegistry()
	task.MustRegister(reg, "touchy", func(_ context.Context, x int) (int, error) {
		if x == 13 {
			panic("unlucky")
		}
		return x, nil
	})
	f.putTasks(t, q, "r1", "touchy", 3, func(i int) string { return strconv.Itoa(12 + i) })
	f.startRun(t, q, "r1")
	f.sentinel(t, q, "r1")
	if _, logs, err := f.runLogged(t, reg, consumer.Config{Name: "C-1"}); err != nil {
		t.Fatalf("%v\n%s", err, logs)
	}
	got := map[int]string{}
	for _, a := range answersOn(t, f, protocol.ResultSubject("r1")) {
		got[a.Index] = string(task.AppendOutcome(nil, a.Outcomes[0]))
	}
	want := map[int]string{0: `{"result":12}`, 1: `{"error":"task touchy panicked: unlucky"}`, 2: `{"result":14}`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("answers %v, want %v", got, want)
	}
}

// MaxTasks retires a worker after that many tasks; workers started in
// turn run every task exactly once.
func TestMaxTasksRetires(t *testing.T) {
	const q = "retire"
	f := setup(t, q)
	var mu sync.Mutex
	ran := map[int]int{}
	reg := task.NewRegistry()
	task.MustRegister(reg, "id", func(_ context.Context, x int) (int, error) {
		mu.Lock()
		ran[x]++
		mu.Unlock()
		return x, nil
	})
	f.putTasks(t, q, "r1", "id", 10, strconv.Itoa)
	f.startRun(t, q, "r1")
	f.sentinel(t, q, "r1")
	var retired []bool
	for i := range 5 {
		w, logs, err := f.runLogged(t, reg, consumer.Config{Name: fmt.Sprintf("C-%d", i+1), MaxTasks: 3, Run: "r1"})
		if err != nil {
			t.Fatalf("worker %d: %v\n%s", i+1, err, logs)
		}
		retired = append(retired, w.Retired())
		if w.TookSentinel() {
			break
		}
	}
	if fmt.Sprint(retired) != "[true true true false]" {
		t.Errorf("retired %v, want three retirements, then the sentinel", retired)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range 10 {
		if ran[i] != 1 {
			t.Errorf("task %d ran %d times, want once", i, ran[i])
		}
	}
}

// A failing initializer stops the worker before it takes any task.
func TestInitializerFailureTakesNothing(t *testing.T) {
	const q = "init"
	f := setup(t, q)
	reg := demo.Builtins()
	f.putTasks(t, q, "r1", demo.KindSquare, 1, func(int) string { return `{"x":3}` })
	_, _, err := f.runLogged(t, reg, consumer.Config{Name: "C-1", Run: "r1",
		Init: func(context.Context) error { return errors.New("database unreachable") }})
	if err == nil || !strings.Contains(err.Error(), "initializer: database unreachable") {
		t.Fatalf("Run: %v, want the initializer's error", err)
	}
	info, err := f.topo.Tasks.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("%d task messages, want the 1 untouched", info.State.Msgs)
	}
}

// MaxTasks also bounds the waiting pull: a worker of concurrency 4 that
// may take one more task takes one, even when several arrive at once.
func TestMaxTasksBoundsTheWaitingPull(t *testing.T) {
	const q = "retirewait"
	f := setup(t, q)
	var mu sync.Mutex
	ran := 0
	reg := task.NewRegistry()
	task.MustRegister(reg, "id", func(_ context.Context, x int) (int, error) {
		mu.Lock()
		ran++
		mu.Unlock()
		return x, nil
	})
	f.startRun(t, q, "r1")
	done := make(chan error, 1)
	var w *consumer.Worker
	go func() {
		var err error
		defer func() { done <- err }() // also when runLogged fails the test
		w, _, err = f.runLogged(t, reg, consumer.Config{Name: "C-1", MaxTasks: 1, Concurrency: 4, Run: "r1"})
	}()
	// The worker is idle in its waiting pull when the tasks arrive.
	waitPulling(t, f, 1)
	f.putTasks(t, q, "r1", "id", 4, strconv.Itoa)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if ran != 1 || !w.Retired() {
		t.Errorf("ran %d tasks, retired %v; want 1 task, then retired", ran, w.Retired())
	}
}

// waitPulling waits up to 20 s for n pull requests waiting on the queue.
func waitPulling(t *testing.T, f *fixture, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := f.topo.Consumer.Info(context.Background())
		if err == nil && info.NumWaiting >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pull requests not waiting within 20s", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
