package producer_test

import (
	"fmt"
	"runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/procq/procq/demo"
	"github.com/procq/procq/producer"
)

// BenchmarkMapSquare maps square (no sleep) over 10,000 inputs through the
// real broker with two in-process workers; the e2e benchmark and
// "make bench" measure the same with separate processes.
func BenchmarkMapSquare(b *testing.B) {
	const n = 10_000
	for _, chunk := range []int{1, 0} {
		for _, prefetch := range []int{0, 1, 256} {
			pf := fmt.Sprint(prefetch)
			if prefetch == 0 {
				pf = "adaptive" // the default
			}
			name := fmt.Sprintf("chunk=%d/prefetch=%s", chunk, pf)
			if chunk == 0 {
				name = fmt.Sprintf("chunk=auto-%d/prefetch=%s", producer.AutoChunk(n, 2), pf)
			}
			b.Run(name, func(b *testing.B) {
				e := newEnv(b)
				e.workersPrefetch(b, 2, 1, prefetch, demo.Builtins())
				pool := producer.NewPool(e.q, producer.PoolConfig{ChunkSize: chunk, Workers: 2, Window: 1024})
				args := squares(n)
				b.ResetTimer()
				for b.Loop() {
					rs, err := pool.Map(b.Context(), demo.KindSquare, args)
					if err != nil || len(rs) != n {
						b.Fatalf("map: %d results, %v", len(rs), err)
					}
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "inputs/s")
			})
		}
	}
}

// BenchmarkImapMillion streams up to a million inputs from an iterator
// (never a slice) through the broker and reports the peak live heap
// (broker, workers and map together, in this one process), sampled while
// the map runs: the window, not the input count, bounds it,
// so ten times the inputs should not take ten times the memory.
func BenchmarkImapMillion(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000, 3_000_000} {
		b.Run(fmt.Sprintf("inputs=%d", n), func(b *testing.B) { benchImap(b, n) })
	}
}

func benchImap(b *testing.B, n int) {
	e := newEnv(b)
	e.workersPrefetch(b, 2, 1, 0, demo.Builtins())
	pool := producer.NewPool(e.q, producer.PoolConfig{ChunkSize: 1000, Workers: 2, Window: 16})
	inputs := func(yield func(any) bool) {
		for i := range n {
			if !yield(demo.SquareArgs{X: int64(i % 1000)}) {
				return
			}
		}
	}
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		// The live heap as of the last GC: what the map holds, not garbage.
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	for b.Loop() {
		count := 0
		for r, err := range pool.Imap(b.Context(), demo.KindSquare, inputs) {
			if err != nil {
				b.Fatal(err)
			}
			if want := fmt.Sprint((r.Index % 1000) * (r.Index % 1000)); string(r.Value) != want {
				b.Fatalf("index %d: %s, want %s", r.Index, r.Value, want)
			}
			count++
		}
		if count != n {
			b.Fatalf("%d results, want %d", count, n)
		}
	}
	close(done)
	wg.Wait()
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "inputs/s")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-live-heap-MiB")
}

// BenchmarkOneTask is one task submitted, its result awaited, round trip
// after round trip, with one in-process worker (default, adaptive
// prefetch): as a map of one, and by Pool.Apply; next to it, NATS core
// request/reply of the same
// 9-byte body on the same broker, the floor any broker round trip has.
// Reported: p50 and p99 of the round trip in µs.
func BenchmarkOneTask(b *testing.B) {
	b.Run("procq-map-of-one", func(b *testing.B) {
		e := newEnv(b)
		e.workersPrefetch(b, 1, 1, 0, demo.Builtins())
		pool := producer.NewPool(e.q, producer.PoolConfig{})
		args := []any{demo.SquareArgs{X: 7}}
		rtts := make([]time.Duration, 0, b.N)
		for b.Loop() {
			start := time.Now()
			rs, err := pool.Map(b.Context(), demo.KindSquare, args)
			if err != nil || len(rs) != 1 || string(rs[0].Value) != "49" {
				b.Fatalf("map of one: %v, %v", rs, err)
			}
			rtts = append(rtts, time.Since(start))
		}
		reportRTT(b, rtts)
	})
	b.Run("procq-apply", func(b *testing.B) {
		e := newEnv(b)
		e.workersPrefetch(b, 1, 1, 0, demo.Builtins())
		pool := producer.NewPool(e.q, producer.PoolConfig{})
		defer func() { _ = pool.Close(b.Context()) }()
		args := demo.SquareArgs{X: 7}
		rtts := make([]time.Duration, 0, b.N)
		for b.Loop() {
			start := time.Now()
			v, err := pool.Apply(b.Context(), demo.KindSquare, args)
			if err != nil || string(v) != "49" {
				b.Fatalf("apply: %s, %v", v, err)
			}
			rtts = append(rtts, time.Since(start))
		}
		reportRTT(b, rtts)
	})
	b.Run("nats-request-reply", func(b *testing.B) {
		e := newEnv(b)
		nc := e.js.Conn()
		sub, err := nc.Subscribe("bench.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) })
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = sub.Unsubscribe() }()
		body := []byte(`{"x": 7}`)
		rtts := make([]time.Duration, 0, b.N)
		for b.Loop() {
			start := time.Now()
			if _, err := nc.Request("bench.echo", body, 5*time.Second); err != nil {
				b.Fatal(err)
			}
			rtts = append(rtts, time.Since(start))
		}
		reportRTT(b, rtts)
	})
}

func reportRTT(b *testing.B, rtts []time.Duration) {
	slices.Sort(rtts)
	b.ReportMetric(float64(rtts[len(rtts)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(rtts[len(rtts)*99/100].Microseconds()), "p99-µs")
}
