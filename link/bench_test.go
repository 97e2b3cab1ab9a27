package link_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/internal/natstest"
)

// BenchmarkRawJetStream is the floor under procq's pool: what JetStream
// itself does on this machine with no procq code in the way, in the shape
// of `nats bench js pub --purge` plus `nats bench js consume` run at once.
// On one embedded broker, a file-storage WorkQueue stream; each iteration
// publishes rawMsgs 128-byte messages with PublishMsgAsync (at most
// rawInFlight unacknowledged, every ack awaited) while a pull consumer
// (explicit ack, Messages() in batches of rawBatch) on its own connection
// receives and acks each one. An iteration ends when every publish ack has
// arrived, every message was received, and the stream is empty again (the
// acks were applied). Reported: msgs/s, each message published once and
// consumed once, all in this one process.
func BenchmarkRawJetStream(b *testing.B) {
	const (
		rawMsgs     = 100_000
		rawSize     = 128
		rawInFlight = 256
		rawBatch    = 500
		stream      = "BENCH_RAW"
		subject     = "bench.raw"
		limit       = 2 * time.Minute // bounds every wait of one iteration
	)
	srv := natstest.Start(b)

	var pubErrs atomic.Int64
	pubJS, err := jetstream.New(srv.Conn(b),
		jetstream.WithPublishAsyncMaxPending(rawInFlight),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { pubErrs.Add(1) }))
	if err != nil {
		b.Fatal(err)
	}
	subJS := srv.JetStream(b) // the consumer's own connection, as nats bench has

	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
	defer cancel()
	st, err := pubJS.CreateStream(ctx, jetstream.StreamConfig{
		Name:      stream,
		Subjects:  []string{subject},
		Storage:   jetstream.FileStorage,
		Retention: jetstream.WorkQueuePolicy,
	})
	if err != nil {
		b.Fatal(err)
	}
	cons, err := subJS.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:   "bench",
		AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		b.Fatal(err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(rawBatch))
	if err != nil {
		b.Fatal(err)
	}
	defer it.Stop()

	payload := make([]byte, rawSize)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}

	iteration := func() error {
		consumed := make(chan error, 1)
		go func() {
			for range rawMsgs {
				m, err := it.Next(jetstream.NextMaxWait(limit))
				if err != nil {
					consumed <- fmt.Errorf("next: %w", err)
					return
				}
				if len(m.Data()) != rawSize {
					consumed <- fmt.Errorf("got %d bytes, want %d", len(m.Data()), rawSize)
					return
				}
				if err := m.Ack(); err != nil {
					consumed <- fmt.Errorf("ack: %w", err)
					return
				}
			}
			consumed <- nil
		}()

		deadline := time.After(limit)
		for range rawMsgs {
			// PublishMsgAsync blocks (up to its stall wait) while rawInFlight
			// publishes await their acks.
			if _, err := pubJS.PublishMsgAsync(&nats.Msg{Subject: subject, Data: payload}); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
		}
		select {
		case <-pubJS.PublishAsyncComplete():
		case <-deadline:
			return errors.New("publish acks did not all arrive in time")
		}
		if n := pubErrs.Load(); n > 0 {
			return fmt.Errorf("%d publishes failed", n)
		}
		select {
		case err := <-consumed:
			if err != nil {
				return err
			}
		case <-deadline:
			return errors.New("consumer did not receive every message in time")
		}
		// The acks are fire-and-forget; the iteration ends once the broker
		// has applied them all and the work queue is empty.
		for {
			info, err := st.Info(ctx)
			if err != nil {
				return fmt.Errorf("stream info: %w", err)
			}
			if info.State.Msgs == 0 {
				return nil
			}
			select {
			case <-deadline:
				return fmt.Errorf("%d messages left unacknowledged", info.State.Msgs)
			case <-time.After(time.Millisecond):
			}
		}
	}

	for b.Loop() {
		if err := iteration(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rawMsgs*b.N)/b.Elapsed().Seconds(), "msgs/s")
}
