package consumer

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ack, nak and term settle a message and stop keeping its lease. A failed
// settle is logged: the message then comes back after the ack wait, which
// is safe.
func (w *Worker) ack(ctx context.Context, msg jetstream.Msg) {
	w.leases.release(msg)
	w.settled(ctx, "ack", msg.Ack())
}

func (w *Worker) nak(ctx context.Context, msg jetstream.Msg, delay time.Duration, what string) {
	w.leases.release(msg)
	if delay > 0 {
		w.settled(ctx, what, msg.NakWithDelay(delay))
		return
	}
	w.settled(ctx, what, msg.Nak())
}

func (w *Worker) term(ctx context.Context, msg jetstream.Msg, reason string) {
	w.leases.release(msg)
	w.settled(ctx, "term", msg.TermWithReason(truncate(reason, 256)))
}

func (w *Worker) settled(ctx context.Context, what string, err error) {
	if err != nil {
		w.log.WarnContext(ctx, what+" failed", "error", err)
	}
}

// backoff is the delay before a task whose answer or dead letter could not
// be stored comes back: growing with its deliveries, at most 5s.
func backoff(attempt uint64) time.Duration {
	return min(time.Duration(attempt)*retryPause, 5*time.Second)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
