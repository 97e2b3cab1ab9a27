package producer_test

import (
	"fmt"
	"testing"

	"github.com/procq/procq/producer"
	"github.com/procq/procq/task"
)

// BenchmarkMapSquare maps square (no sleep) over 10,000 inputs through the
// real broker with two in-process workers; the e2e benchmark and
// "make bench" measure the same with separate processes.
func BenchmarkMapSquare(b *testing.B) {
	const n = 10_000
	for _, chunk := range []int{1, 0} {
		for _, prefetch := range []int{1, 256} {
			name := fmt.Sprintf("chunk=%d/prefetch=%d", chunk, prefetch)
			if chunk == 0 {
				name = fmt.Sprintf("chunk=auto(%d)/prefetch=%d", producer.AutoChunk(n, 2), prefetch)
			}
			b.Run(name, func(b *testing.B) {
				e := newEnv(b)
				e.workersPrefetch(b, 2, 1, prefetch, task.Builtins())
				pool := producer.NewPool(e.q, producer.PoolConfig{ChunkSize: chunk, Workers: 2, Window: 1024})
				args := squares(n)
				b.ResetTimer()
				for b.Loop() {
					rs, err := pool.Map(b.Context(), task.KindSquare, args)
					if err != nil || len(rs) != n {
						b.Fatalf("map: %d results, %v", len(rs), err)
					}
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "inputs/s")
			})
		}
	}
}
