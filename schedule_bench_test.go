package procq_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nuid"

	"github.com/procq/procq"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// The measurements of tasks in time (BENCHMARKS.md, "Tasks in time"),
// against the package's test broker (TestMain: procq's broker with its
// embedded nats-server, file storage) and an in-process worker. Each
// iteration is one whole measurement; run them once each:
//
//	go test -run '^$' -bench Schedule -benchtime 1x -count 2 -timeout 15m .

// connectTB is connect for a benchmark.
func connectTB(tb testing.TB, queue string) *procq.Client {
	tb.Helper()
	c, err := procq.Connect(tb.Context(), procq.WithQueue(queue))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

// runWorker runs an in-process worker of reg on the client's queue until
// the test or benchmark ends.
func runWorker(tb testing.TB, c *procq.Client, reg *task.Registry) {
	tb.Helper()
	w, err := c.Worker(reg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				tb.Errorf("worker: %v", err)
			}
		case <-time.After(30 * time.Second):
			tb.Errorf("worker did not stop within 30s")
		}
	})
}

// percentile is the nearest-rank p-quantile of sorted (0 < p <= 1).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// lateArg is a delayed task's argument: its number and when it is due
// (Unix nanoseconds), so that the handler can tell how late it started.
type lateArg struct {
	I   int   `json:"i"`
	Due int64 `json:"due"`
}

// BenchmarkScheduleLateness puts 1,000 delayed tasks (Pool.Submit with
// procq.At) due at evenly spread times over 10 s, all put before the
// first is due, and measures in the handler how late each started: its
// start (time.Now() on entering the handler) minus its due time. It
// reports the quantiles of that lateness, and how the starts group into
// the batches the broker's scheduler fires (nats-server looks for due
// schedules at most every 250 ms per stream).
func BenchmarkScheduleLateness(b *testing.B) {
	const (
		n      = 1000
		spread = 10 * time.Second
		lead   = 3 * time.Second // from the first put to the first due time
	)
	c := connectTB(b, "sched-lateness")
	var (
		mu     sync.Mutex
		starts = make([][]time.Time, n) // each task's starts, by number
		dues   = make([]time.Time, n)
	)
	reg := task.NewRegistry()
	task.MustRegister(reg, "late", func(ctx context.Context, a lateArg) (int, error) {
		now := time.Now()
		mu.Lock()
		if a.I >= 0 && a.I < n {
			starts[a.I] = append(starts[a.I], now)
			dues[a.I] = time.Unix(0, a.Due)
		}
		mu.Unlock()
		return a.I, nil
	})
	runWorker(b, c, reg)
	p, err := c.Pool(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p.Close(ctx)
	}()

	var all []time.Duration
	for b.Loop() {
		mu.Lock()
		clear(starts)
		clear(dues)
		mu.Unlock()
		t0 := time.Now()
		first := t0.Add(lead)
		for i := range n {
			due := first.Add(time.Duration(i) * spread / (n - 1))
			if _, err := p.Submit(b.Context(), "late", lateArg{I: i, Due: due.UnixNano()}, procq.At(due)); err != nil {
				b.Fatalf("submit #%d: %v", i, err)
			}
		}
		put := time.Since(t0)
		if put > lead {
			b.Logf("warning: putting the %d tasks took %v, past the first due time", n, put)
		}
		deadline := first.Add(spread + time.Minute)
		for {
			mu.Lock()
			ran := 0
			for _, s := range starts {
				if len(s) > 0 {
					ran++
				}
			}
			mu.Unlock()
			if ran == n {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d delayed tasks ran within a minute of the last due time", ran, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(time.Second) // a second run of a task, if any, shows now

		mu.Lock()
		late := make([]time.Duration, n)
		var begun []time.Time
		twice := 0
		for i, s := range starts {
			late[i] = s[0].Sub(dues[i])
			begun = append(begun, s[0])
			if len(s) > 1 {
				twice++
			}
		}
		mu.Unlock()
		if twice > 0 {
			b.Errorf("%d delayed tasks ran more than once", twice)
		}
		all = append(all, late...)
		slices.Sort(late)

		// Batches: starts more than 100 ms apart belong to different
		// firings of the broker's scheduler.
		slices.SortFunc(begun, func(x, y time.Time) int { return x.Compare(y) })
		var batchStarts []time.Time
		for i, t := range begun {
			if i == 0 || t.Sub(begun[i-1]) > 100*time.Millisecond {
				batchStarts = append(batchStarts, t)
			}
		}
		var every []time.Duration
		for i := 1; i < len(batchStarts); i++ {
			every = append(every, batchStarts[i].Sub(batchStarts[i-1]))
		}
		slices.Sort(every)
		b.Logf("%d delayed tasks over %v, put in %v: lateness min %.1f p50 %.1f p90 %.1f p99 %.1f max %.1f ms; "+
			"%d batches, one every %.0f ms (median; min %.0f, max %.0f); ran twice: %d",
			n, spread, put.Round(time.Millisecond), ms(late[0]), ms(percentile(late, .5)), ms(percentile(late, .9)),
			ms(percentile(late, .99)), ms(late[n-1]), len(batchStarts), ms(percentile(every, .5)),
			ms(percentile(every, 0)), ms(percentile(every, 1)), twice)
	}
	slices.Sort(all)
	b.ReportMetric(ms(percentile(all, .5)), "p50-ms")
	b.ReportMetric(ms(percentile(all, .9)), "p90-ms")
	b.ReportMetric(ms(percentile(all, .99)), "p99-ms")
	b.ReportMetric(ms(all[len(all)-1]), "max-ms")
	b.ReportMetric(ms(all[0]), "min-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkScheduleEvery creates an every-1s schedule, lets it run for
// 60 s, removes it, and counts its firings: the handler's runs, and the
// distinct firing ids claimed in PROCQ_FIRED (protocol.FiringID of the
// schedule's name and each firing's Nats-Schedule-Next, under the queue:
// protocol.FiredKey), with the gaps
// between consecutive runs and how far past the whole second (the
// broker fires an every-1s schedule on whole seconds) each run started.
func BenchmarkScheduleEvery(b *testing.B) {
	const window, queue = 60 * time.Second, "sched-every"
	c := connectTB(b, queue)
	var (
		mu   sync.Mutex
		runs = map[string][]time.Time{} // by schedule name
	)
	reg := task.NewRegistry()
	task.MustRegister(reg, "tick", func(ctx context.Context, name string) (string, error) {
		now := time.Now()
		mu.Lock()
		runs[name] = append(runs[name], now)
		mu.Unlock()
		return name, nil
	})
	runWorker(b, c, reg)

	var counts, distincts []float64
	var minGap, maxGap time.Duration
	for b.Loop() {
		name := "every-" + strings.ToLower(nuid.Next()) // claims outlive a run
		if err := c.Schedule(b.Context(), name, "tick", name, procq.Every(time.Second)); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		fired, err := c.JetStream().KeyValue(b.Context(), protocol.FiredBucket)
		if err != nil {
			b.Fatal(err)
		}
		select {
		case <-time.After(window):
		case <-b.Context().Done():
			b.Fatal(b.Context().Err())
		}
		if err := c.Unschedule(context.Background(), name); err != nil {
			b.Fatal(err)
		}
		open := time.Since(t0)
		time.Sleep(3 * time.Second) // a firing already on its way still runs

		mu.Lock()
		at := slices.Clone(runs[name])
		mu.Unlock()
		prefix := protocol.FiredKey(queue, name) + ".next-"
		keys, err := fired.ListKeysFiltered(b.Context(), protocol.FiredKey(queue, name)+".>")
		if err != nil {
			b.Fatal(err)
		}
		var nexts []int64
		for k := range keys.Keys() {
			next, err := strconv.ParseInt(strings.TrimPrefix(k, prefix), 10, 64)
			if err != nil {
				b.Fatalf("firing key %q: %v", k, err)
			}
			nexts = append(nexts, next)
		}
		slices.Sort(nexts)
		steps := map[int64]int{} // between consecutive Nats-Schedule-Next values, s
		for i := 1; i < len(nexts); i++ {
			steps[nexts[i]-nexts[i-1]]++
		}
		if len(at) != len(nexts) {
			b.Errorf("%d runs of %d distinct firings", len(at), len(nexts))
		}
		var gaps, past []time.Duration
		for i, t := range at {
			past = append(past, t.Sub(t.Truncate(time.Second)))
			if i > 0 {
				gaps = append(gaps, t.Sub(at[i-1]))
			}
		}
		slices.Sort(gaps)
		slices.Sort(past)
		if len(gaps) > 0 {
			if minGap == 0 || gaps[0] < minGap {
				minGap = gaps[0]
			}
			maxGap = max(maxGap, gaps[len(gaps)-1])
		}
		firstDue := "none"
		if len(nexts) > 0 {
			firstDue = fmt.Sprintf("%.3f s", time.Unix(nexts[0]-1, 0).Sub(t0).Seconds())
		}
		b.Logf("every 1s, made %.3f s past a whole second, first firing due %s after; schedule open %.3f s: "+
			"%d runs, %d distinct firings (steps of Nats-Schedule-Next, s: %v); "+
			"gap min %.1f p50 %.1f max %.1f ms; start past the whole second p50 %.1f p99 %.1f max %.1f ms",
			ms(t0.Sub(t0.Truncate(time.Second)))/1000, firstDue, open.Seconds(), len(at), len(nexts), fmt.Sprint(steps), ms(percentile(gaps, 0)), ms(percentile(gaps, .5)),
			ms(percentile(gaps, 1)), ms(percentile(past, .5)), ms(percentile(past, .99)), ms(percentile(past, 1)))
		counts = append(counts, float64(len(at)))
		distincts = append(distincts, float64(len(nexts)))
	}
	b.ReportMetric(slices.Min(counts), "runs")
	b.ReportMetric(slices.Min(distincts), "firings")
	b.ReportMetric(ms(minGap), "min-gap-ms")
	b.ReportMetric(ms(maxGap), "max-gap-ms")
	b.ReportMetric(0, "ns/op")
}
