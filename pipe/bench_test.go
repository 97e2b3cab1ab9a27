package pipe_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/broker"
	"github.com/procq/procq/pipe"
)

// The benchmarks share one embedded broker, so that the pipe and raw NATS
// figures of one run come from the same server; TestMain shuts it down.
var bench struct {
	once  sync.Once
	dir   string
	srv   *broker.Server
	err   error
	pipes atomic.Int64
}

func benchBroker(b *testing.B) *broker.Server {
	b.Helper()
	bench.once.Do(func() {
		if bench.dir, bench.err = os.MkdirTemp("", "procq-pipe-bench-"); bench.err != nil {
			return
		}
		bench.srv, bench.err = broker.Start(broker.Config{URL: "nats://127.0.0.1:0", StoreDir: bench.dir}, nil)
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.srv
}

func stopBenchBroker() {
	if bench.srv != nil {
		bench.srv.Shutdown()
	}
	if bench.dir != "" {
		_ = os.RemoveAll(bench.dir)
	}
}

// benchConn is a connection of its own, as each end's process would have.
func benchConn(b *testing.B) *nats.Conn {
	b.Helper()
	srv := benchBroker(b)
	nc, err := nats.Connect(srv.ClientURL(), nats.Token(srv.Token()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	return nc
}

// benchPipe opens both ends of a new pipe, each on its own connection.
func benchPipe(b *testing.B, cfg pipe.Config) (a, z *pipe.Conn) {
	b.Helper()
	name := fmt.Sprintf("bench%d", bench.pipes.Add(1))
	for i, end := range []pipe.End{pipe.A, pipe.B} {
		js, err := jetstream.New(benchConn(b))
		if err != nil {
			b.Fatal(err)
		}
		c, err := pipe.Open(context.Background(), js, name, end, cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.Close() })
		if i == 0 {
			a = c
		} else {
			z = c
		}
	}
	return a, z
}

var payload = bytes.Repeat([]byte("p"), 128)

// BenchmarkPipeThroughput: one end sends b.N 128-byte messages, the other
// receives them; msgs/s counts until the last one was received. window=1
// waits for each store acknowledgement in Send (the default); window=256
// keeps up to 256 in flight (Config.SendWindow).
func BenchmarkPipeThroughput(b *testing.B) {
	for _, window := range []int{1, 256} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			ctx := context.Background()
			a, z := benchPipe(b, pipe.Config{SendWindow: window})
			done := make(chan error, 1)
			b.ResetTimer()
			start := time.Now()
			go func() {
				for range b.N {
					if _, err := z.Recv(ctx); err != nil {
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
			if err := a.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkPipePingPong: one end sends a 128-byte message, the other sends
// it back; the round trip's p50 and p99.
func BenchmarkPipePingPong(b *testing.B) {
	ctx := context.Background()
	a, z := benchPipe(b, pipe.Config{})
	echoed := make(chan struct{})
	go func() {
		defer close(echoed)
		for {
			m, err := z.Recv(ctx)
			if err != nil || z.Send(ctx, m) != nil {
				return // io.EOF once a closes
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
	b.StopTimer()
	report(b, rtts)
	_ = a.Close()
	<-echoed
}

// BenchmarkRawRequestReply is the yardstick: NATS core request/reply of
// 128 bytes on the same broker, with no storage, no order across
// reconnects and no late receiver.
func BenchmarkRawRequestReply(b *testing.B) {
	responder, requester := benchConn(b), benchConn(b)
	sub, err := responder.Subscribe("bench.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) })
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := responder.Flush(); err != nil {
		b.Fatal(err)
	}
	rtts := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := requester.Request("bench.echo", payload, 5*time.Second); err != nil {
			b.Fatal(err)
		}
		rtts = append(rtts, time.Since(start))
	}
	b.StopTimer()
	report(b, rtts)
}

// report adds the round trips' rate, p50 and p99.
func report(b *testing.B, rtts []time.Duration) {
	var total time.Duration
	for _, d := range rtts {
		total += d
	}
	slices.Sort(rtts)
	b.ReportMetric(float64(len(rtts))/total.Seconds(), "msgs/s")
	b.ReportMetric(float64(rtts[len(rtts)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(rtts[(len(rtts)*99)/100].Microseconds()), "p99-µs")
}
