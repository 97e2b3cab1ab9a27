package producer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/consumer"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/producer"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// syncBuf is a log buffer the workers write from several goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// refusal makes the results stream refuse every write (one message in
// it, at most one allowed, new ones refused) until the returned function
// restores its limits.
func refusal(t *testing.T, e *env) (restore func()) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.js.Publish(ctx, protocol.ResultSubject("blocker"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	info, err := e.topo.Results.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.Config
	refusing := cfg
	refusing.MaxMsgs, refusing.Discard = 1, jetstream.DiscardNew
	if _, err := e.js.UpdateStream(ctx, refusing); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := e.js.UpdateStream(ctx, cfg); err != nil {
			t.Errorf("restore the results stream: %v", err)
		}
	}
}

// storeWorkers runs n in-process workers of concurrency 2 whose handler
// squares its input after 2ms, counting the runs of each input (runs)
// and the highest delivery attempt seen (attempts).
func storeWorkers(t *testing.T, e *env, n int, storeTimeout time.Duration, logs *syncBuf, runs []atomic.Int32, attempts *atomic.Int32) {
	t.Helper()
	reg := task.NewRegistry()
	if err := reg.Register(demo.KindSquare, task.HandlerFunc(func(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
		var a demo.SquareArgs
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, err
		}
		runs[a.X-1].Add(1)
		for at := int32(task.Attempt(ctx)); ; {
			seen := attempts.Load()
			if at <= seen || attempts.CompareAndSwap(seen, at) {
				break
			}
		}
		if err := demo.Sleep(ctx, 2*time.Millisecond); err != nil {
			return nil, err
		}
		return json.RawMessage(fmt.Sprint(a.X * a.X)), nil
	})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range n {
		w, err := consumer.New(consumer.Config{Name: fmt.Sprintf("W-%d", i+1), Concurrency: 2, FetchWait: time.Second,
			StoreTimeout: storeTimeout}, e.js, e.topo, reg, slog.New(slog.NewTextHandler(logs, nil)))
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

// mapWithRefusal runs a map of n squares, chunk 1, and makes the results
// stream refuse writes for outage once the map has yielded 50 results.
// It returns the results by index and the map's error.
func mapWithRefusal(t *testing.T, e *env, n int, outage time.Duration, limit time.Duration) ([]producer.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	got := make([]producer.Result, n)
	seen := 0
	var refused sync.WaitGroup
	defer refused.Wait()
	pool := producer.NewPool(e.q, producer.PoolConfig{ChunkSize: 1, Window: 64})
	for r, err := range pool.ImapUnordered(ctx, demo.KindSquare, slices.Values(squares(n))) {
		if err != nil {
			return got, err
		}
		if got[r.Index].Index != 0 || got[r.Index].Value != nil || got[r.Index].Err != nil {
			t.Errorf("input #%d yielded twice", r.Index)
		}
		got[r.Index] = r
		seen++
		if seen == 50 {
			restore := refusal(t, e)
			t.Logf("results stream refusing writes for %v", outage)
			refused.Go(func() {
				time.Sleep(outage)
				restore()
				t.Logf("results stream restored")
			})
		}
	}
	if seen != n {
		t.Errorf("%d results yielded, want %d", seen, n)
	}
	return got, nil
}

func deadLetters(t *testing.T, e *env) uint64 {
	t.Helper()
	info, err := e.topo.Dead.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// The results stream refuses writes for 3s mid-map. The consumers keep
// the computed answers and their tasks, and store them again with
// backoff: every input has its correct result once, no task is
// dead-lettered, and none is delivered a second time (the try budget is
// untouched).
func TestResultsRefusedForAWhile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 600
	var logs syncBuf
	runs := make([]atomic.Int32, n)
	var attempts atomic.Int32
	storeWorkers(t, e, 2, 0, &logs, runs, &attempts)
	got, err := mapWithRefusal(t, e, n, 3*time.Second, 45*time.Second)
	if err != nil {
		t.Fatalf("map: %v; log:\n%s", err, logs.String())
	}
	for i, r := range got {
		if want := fmt.Sprint((i + 1) * (i + 1)); r.Err != nil || string(r.Value) != want {
			t.Errorf("input #%d: %s, %v; want %s", i, r.Value, r.Err, want)
		}
		if k := runs[i].Load(); k != 1 {
			t.Errorf("input #%d ran %d times, want once", i, k)
		}
	}
	if a := attempts.Load(); a != 1 {
		t.Errorf("a task was delivered %d times, want every one once", a)
	}
	if d := deadLetters(t, e); d != 0 {
		t.Errorf("%d tasks dead-lettered, want none", d)
	}
	log := logs.String()
	if !strings.Contains(log, "answers not stored; keeping them") || !strings.Contains(log, "maximum messages exceeded") {
		t.Errorf("no answer was refused (nothing tested); log:\n%s", log)
	}
}

// The results stream refuses writes for longer than the consumers'
// store timeout (1s here; queue.put_timeout in the executable). The
// tasks whose answers could not be stored within it are dead-lettered,
// and their inputs fail in the map at once, with a reason naming the
// store failure; the rest have their results, and the map ends.
func TestResultsRefusedPastStoreTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 600
	var logs syncBuf
	runs := make([]atomic.Int32, n)
	var attempts atomic.Int32
	storeWorkers(t, e, 2, time.Second, &logs, runs, &attempts)
	begin := time.Now()
	got, err := mapWithRefusal(t, e, n, 4*time.Second, 45*time.Second)
	if err != nil {
		t.Fatalf("map: %v; log:\n%s", err, logs.String())
	}
	t.Logf("map ended %v after it began", time.Since(begin).Round(time.Millisecond))
	failed := 0
	for i, r := range got {
		var te *producer.TaskError
		switch {
		case r.Err == nil:
			if want := fmt.Sprint((i + 1) * (i + 1)); string(r.Value) != want {
				t.Errorf("input #%d: %s, want %s", i, r.Value, want)
			}
		case errors.As(r.Err, &te) && strings.Contains(te.Message, "dead-lettered: answer not stored within 1s") &&
			strings.Contains(te.Message, "maximum messages exceeded"):
			failed++
		default:
			t.Errorf("input #%d: error %v, want one naming the answer not stored", i, r.Err)
		}
		if k := runs[i].Load(); k != 1 {
			t.Errorf("input #%d ran %d times, want once", i, k)
		}
	}
	if failed == 0 {
		t.Errorf("no input failed (nothing tested); log:\n%s", logs.String())
	}
	if d := deadLetters(t, e); d != uint64(failed) {
		t.Errorf("%d tasks dead-lettered, want %d (one per failed input)", d, failed)
	}
	t.Logf("%d inputs failed, %d answered", failed, n-failed)
}
