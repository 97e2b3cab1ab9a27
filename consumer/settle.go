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
