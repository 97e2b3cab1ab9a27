package pipe_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/pipe"
)

var payload = bytes.Repeat([]byte("p"), 128)

// BenchmarkPipe measures, on one embedded broker in one run: a pipe's
// one-way throughput and ping-pong round trip with 128-byte messages, and
// the same two figures for raw NATS request/reply (no durability, no
// order guarantee across reconnects) as the yardstick.
func BenchmarkPipe(b *testing.B) {
	srv := natstest.Start(b)
	js := srv.JetStream(b)
	ctx := context.Background()
	n := 0
	name := func() string { n++; return fmt.Sprintf("bench%d", n) }

	b.Run("pipe/throughput", func(b *testing.B) {
		p := name()
		a, bb := mustOpen(b, js, p, pipe.A), mustOpen(b, js, p, pipe.B)
		done := make(chan error, 1)
		b.ResetTimer()
		go func() {
			for range b.N {
				if _, err := bb.Recv(ctx); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		for range b.N {
			if err := a.Send(ctx, payload); err != nil {
				b.Fatal(err)
			}
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		closeBoth(a, bb)
	})
	b.Run("pipe/pingpong", func(b *testing.B) {
		p := name()
		a, bb := mustOpen(b, js, p, pipe.A), mustOpen(b, js, p, pipe.B)
		go func() {
			for {
				m, err := bb.Recv(ctx)
				if err != nil {
					return
				}
				if err := bb.Send(ctx, m); err != nil {
					return
				}
			}
		}()
		rtts := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			start := time.Now()
			if err := a.Send(ctx, payload); err != nil {
				b.Fatal(err)
			}
			if _, err := a.Recv(ctx); err != nil {
				b.Fatal(err)
			}
			rtts = append(rtts, time.Since(start))
		}
		report(b, rtts)
		closeBoth(a, bb)
	})
	b.Run("nats-request-reply", func(b *testing.B) {
		nc := srv.Conn(b)
		sub, err := nc.Subscribe("bench.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) })
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Unsubscribe()
		client := srv.Conn(b)
		rtts := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			start := time.Now()
			if _, err := client.Request("bench.echo", payload, 5*time.Second); err != nil {
				b.Fatal(err)
			}
			rtts = append(rtts, time.Since(start))
		}
		report(b, rtts)
	})
}

func mustOpen(b *testing.B, js jetstream.JetStream, name string, end pipe.End) *pipe.Conn {
	b.Helper()
	c, err := pipe.Open(context.Background(), js, name, end, pipe.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// report adds the round trips' rate, p50 and p99.
func report(b *testing.B, rtts []time.Duration) {
	slices.Sort(rtts)
	b.ReportMetric(float64(len(rtts))/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(rtts[len(rtts)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(rtts[len(rtts)*99/100].Microseconds()), "p99-µs")
}

func closeBoth(a, b *pipe.Conn) {
	_ = a.Close()
	_ = b.Close()
}
