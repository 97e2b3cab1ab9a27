package consumer_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/consumer"
	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// BenchmarkPriorityOvertake measures how long a high-priority task waits
// behind a deep queue of low-priority ones: 10,000 low-priority tasks are
// queued, two workers (one slot each) run them, and once they are in their
// stride a high-priority task is put. Reported, the median over the
// iterations: the high task's wait from its put to its start
// (high_wait_ms), and side by side the time one prefetch window of low
// tasks takes on the worker that ran it (window_ms: its prefetch at the put,
// window_tasks, times its time per low task over the 300ms before), and
// their ratio (wait/window, below 1: the high task started within one
// window). make bench-priority runs it.
func BenchmarkPriorityOvertake(b *testing.B) {
	for _, c := range []struct {
		task     time.Duration
		prefetch int
	}{
		{0, 0},
		{time.Millisecond, 0},
		{time.Millisecond, 256},
		{10 * time.Millisecond, 0},
	} {
		pf := "adaptive"
		if c.prefetch > 0 {
			pf = fmt.Sprint(c.prefetch)
		}
		b.Run(fmt.Sprintf("task=%v/prefetch=%s", c.task, pf), func(b *testing.B) {
			js := natstest.Start(b).JetStream(b)
			var waits, windows, tasks, ratios []float64
			i := 0
			for b.Loop() {
				i++
				w, win, n := overtakeOnce(b, js, fmt.Sprint("ov", i), c.task, c.prefetch)
				waits, windows, tasks = append(waits, ms(w)), append(windows, ms(win)), append(tasks, float64(n))
				ratios = append(ratios, w.Seconds()/win.Seconds())
			}
			b.ReportMetric(median(waits), "high_wait_ms")
			b.ReportMetric(median(windows), "window_ms")
			b.ReportMetric(median(tasks), "window_tasks")
			b.ReportMetric(median(ratios), "wait/window")
			b.ReportMetric(slices.Max(ratios), "max_wait/window")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// lowStats records when each of a worker's low tasks started.
type lowStats struct {
	mu     sync.Mutex
	starts []time.Time
}

func (s *lowStats) add() {
	s.mu.Lock()
	s.starts = append(s.starts, time.Now())
	s.mu.Unlock()
}

// perTask is the mean time between the worker's low-task starts over the
// span before t; 0 when it started fewer than two.
func (s *lowStats) perTask(t time.Time, span time.Duration) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var in []time.Time
	for _, at := range s.starts {
		if at.After(t.Add(-span)) && !at.After(t) {
			in = append(in, at)
		}
	}
	if len(in) < 2 {
		return 0
	}
	return in[len(in)-1].Sub(in[0]) / time.Duration(len(in)-1)
}

func (s *lowStats) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.starts)
}

// overtakeOnce runs one round on a fresh queue and returns the high task's
// wait, and the window of the worker that ran it: its duration and size.
func overtakeOnce(b *testing.B, js jetstream.JetStream, queue string, taskTime time.Duration, prefetch int) (wait, window time.Duration, size int) {
	b.Helper()
	const lows, warm, span = 10_000, 300, 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topo, err := protocol.EnsureQueue(ctx, js, protocol.QueueConfig{Name: queue})
	if err != nil {
		b.Fatal(err)
	}
	for i := range lows {
		m := nats.NewMsg(protocol.LevelSubject(queue, "R", protocol.PriorityLow))
		m.Header.Set(protocol.HeaderKind, "low")
		m.Data = []byte(fmt.Sprint(i))
		if _, err := js.PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 || i == lows-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				b.Fatal("the low-priority tasks not stored within 2 minutes")
			}
		}
	}

	var highAt atomic.Int64 // when the high task started (Unix ns)
	ranHigh := make(chan int, 1)
	stats := []*lowStats{{}, {}}
	workers := make([]*consumer.Worker, len(stats))
	wctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range workers {
		reg := task.NewRegistry()
		task.MustRegister(reg, "low", func(ctx context.Context, _ int) (struct{}, error) {
			stats[i].add()
			if taskTime > 0 {
				time.Sleep(taskTime)
			}
			return struct{}{}, nil
		})
		task.MustRegister(reg, "high", func(ctx context.Context, _ int) (struct{}, error) {
			highAt.Store(time.Now().UnixNano())
			ranHigh <- i
			return struct{}{}, nil
		})
		w, err := consumer.New(consumer.Config{Name: fmt.Sprint("W-", i+1), Prefetch: prefetch}, js, topo, reg, nil)
		if err != nil {
			b.Fatal(err)
		}
		workers[i] = w
		wg.Go(func() { _ = w.Run(wctx) })
	}
	defer func() {
		stop()
		wg.Wait()
		_ = topo.Tasks.Purge(context.Background(), jetstream.WithPurgeSubject(protocol.QueueFilter(queue)))
	}()
	b.Logf("waiting for the workers to run %d low-priority tasks each", warm)
	for stats[0].count() < warm || stats[1].count() < warm {
		if ctx.Err() != nil {
			b.Fatalf("the workers ran %d and %d low-priority tasks in 2 minutes", stats[0].count(), stats[1].count())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The windows and the pace at the put.
	put := time.Now()
	sizes := []int{workers[0].Prefetch(), workers[1].Prefetch()}
	per := []time.Duration{stats[0].perTask(put, span), stats[1].perTask(put, span)}
	m := nats.NewMsg(protocol.LevelSubject(queue, "R", protocol.PriorityHigh))
	m.Header.Set(protocol.HeaderKind, "high")
	m.Data = []byte("0")
	if _, err := js.PublishMsg(ctx, m); err != nil {
		b.Fatal(err)
	}
	var who int
	select {
	case who = <-ranHigh:
	case <-ctx.Done():
		b.Fatal("the high-priority task not started within 2 minutes")
	}
	return time.Unix(0, highAt.Load()).Sub(put), time.Duration(sizes[who]) * per[who], sizes[who]
}
