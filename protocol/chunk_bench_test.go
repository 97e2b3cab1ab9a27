package protocol_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// benchSquare is the shape of the square kind (package demo).
type benchSquare struct {
	X     *int64 `json:"x"`
	Sleep string `json:"sleep"`
}

// BenchmarkChunkPath is what one automatic chunk of 10,000 square inputs
// costs each side, stage by stage, in ns per input: the consumer reading
// the chunk, running it and writing its answer; the producer reading the
// answer. The broker's share is not in it.
//
//	go test -run '^$' -bench ChunkPath -count 5 ./protocol
func BenchmarkChunkPath(b *testing.B) {
	const n = 10_000
	reg := task.NewRegistry()
	task.MustRegister(reg, "square", func(_ context.Context, a benchSquare) (int64, error) { return *a.X * *a.X, nil })
	body := []byte{'['}
	for i := range n {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, `{"x":`+strconv.Itoa(i*7919)+`}`...)
	}
	body = append(body, ']')
	chunk := strconv.Itoa(n)
	perInput := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*b.N), "ns/input")
	}
	var answer []byte
	b.Run("consumer", func(b *testing.B) {
		for b.Loop() {
			c, err := protocol.ReadChunk(body, chunk)
			if err != nil {
				b.Fatal(err)
			}
			res, ok := reg.CallChunk(b.Context(), "square", c)
			if !ok || res.Results == nil {
				b.Fatal("chunk not run, or not every input succeeded")
			}
			answer = protocol.AppendAnswer(answer[:0], protocol.Answer{Index: 0, Results: res.Results, Outcomes: res.Outcomes})
		}
		perInput(b)
		b.ReportMetric(float64(len(answer))/n, "answer-B/input")
	})
	msg := append(append([]byte{'['}, answer...), ']')
	b.Run("producer-read", func(b *testing.B) {
		for b.Loop() {
			as, err := protocol.DecodeAnswers(msg, n)
			if err != nil || len(as) != 1 {
				b.Fatal(err)
			}
			if vs, ok := as[0].Values(); !ok || len(vs) != n {
				b.Fatal("not one result per input")
			}
		}
		perInput(b)
	})
}
