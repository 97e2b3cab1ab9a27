package link_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/procq/procq/internal/natstest"
)

// BenchmarkPublish compares the ways a producer can store many small task
// messages, each with its own Nats-Msg-Id (procq's de-duplication) and
// each confirmed stored before it counts: one publish at a time, async
// publishing with a window of 256 (procq's pool today) and of 4096, the
// same on a stream in async persist mode, and JetStream fast batch
// publishing (nats-server 2.14+, AllowBatchPublish, through orbit.go's
// jetstreamext) in batches of pubBatch. One iteration stores pubMsgs
// 128-byte messages into a fresh file-storage WorkQueue stream on one
// embedded broker. Reported: msgs/s.
func BenchmarkPublish(b *testing.B) {
	const (
		pubMsgs  = 50_000
		pubSize  = 128
		pubBatch = 1000
		limit    = 2 * time.Minute // bounds every wait of one iteration
	)
	payload := make([]byte, pubSize)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	msg := func(subject string, run, i int) *nats.Msg {
		m := &nats.Msg{Subject: subject, Data: payload, Header: nats.Header{}}
		m.Header.Set("Nats-Msg-Id", strconv.Itoa(run)+"."+strconv.Itoa(i))
		return m
	}
	type variant struct {
		name    string
		window  int
		persist jetstream.PersistModeType
		publish func(ctx context.Context, js jetstream.JetStream, subject string, run int) error
	}
	async := func(ctx context.Context, js jetstream.JetStream, subject string, run int) error {
		for i := range pubMsgs {
			if _, err := js.PublishMsgAsync(msg(subject, run, i)); err != nil {
				return err
			}
		}
		select {
		case <-js.PublishAsyncComplete():
			return nil
		case <-ctx.Done():
			return fmt.Errorf("acks did not all arrive: %w", ctx.Err())
		}
	}
	variants := []variant{
		{name: "sync", publish: func(ctx context.Context, js jetstream.JetStream, subject string, run int) error {
			for i := range pubMsgs {
				if _, err := js.PublishMsg(ctx, msg(subject, run, i)); err != nil {
					return err
				}
			}
			return nil
		}},
		{name: "async-window=256", window: 256, publish: async},
		{name: "async-window=4096", window: 4096, publish: async},
		{name: "async-window=256/persist=async", window: 256, persist: jetstream.AsyncPersistMode, publish: async},
		{name: fmt.Sprintf("fast-batch=%d", pubBatch), publish: fastBatch(pubMsgs, pubBatch, msg)},
		{name: fmt.Sprintf("fast-batch=%d/flow=500x4", pubBatch), publish: fastBatch(pubMsgs, pubBatch, msg,
			jetstreamext.FastPublishFlowControl{Flow: 500, MaxOutstandingAcks: 4})},
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			srv := natstest.Start(b)
			var pubErrs atomic.Int64
			opts := []jetstream.JetStreamOpt{jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { pubErrs.Add(1) })}
			if v.window > 0 {
				opts = append(opts, jetstream.WithPublishAsyncMaxPending(v.window))
			}
			js, err := jetstream.New(srv.Conn(b), opts...)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
			defer cancel()
			st, err := js.CreateStream(ctx, jetstream.StreamConfig{
				Name: "BENCH_PUB", Subjects: []string{"bench.pub"}, Storage: jetstream.FileStorage,
				Retention: jetstream.WorkQueuePolicy, PersistMode: v.persist, AllowBatchPublish: true,
			})
			if err != nil {
				b.Fatal(err)
			}
			run := 0
			for b.Loop() {
				run++
				ictx, icancel := context.WithTimeout(ctx, limit)
				err := v.publish(ictx, js, "bench.pub", run)
				icancel()
				if err != nil {
					b.Fatal(err)
				}
				if n := pubErrs.Load(); n > 0 {
					b.Fatalf("%d publishes failed", n)
				}
				b.StopTimer()
				info, err := st.Info(ctx)
				if err != nil || info.State.Msgs != pubMsgs {
					b.Fatalf("stream holds %v messages (%v), want %d", info.State.Msgs, err, pubMsgs)
				}
				if err := st.Purge(ctx); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(pubMsgs*b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// fastBatch publishes n messages as fast batches of size messages each.
func fastBatch(n, size int, msg func(string, int, int) *nats.Msg, opts ...jetstreamext.FastPublisherOpt) func(context.Context, jetstream.JetStream, string, int) error {
	return func(ctx context.Context, js jetstream.JetStream, subject string, run int) error {
		for start := 0; start < n; start += size {
			fp, err := jetstreamext.NewFastPublisher(js, opts...)
			if err != nil {
				return err
			}
			end := min(start+size, n)
			for i := start; i < end-1; i++ {
				if _, err := fp.AddMsg(msg(subject, run, i)); err != nil {
					return err
				}
			}
			if _, err := fp.CommitMsg(ctx, msg(subject, run, end-1)); err != nil {
				return err
			}
		}
		return nil
	}
}
