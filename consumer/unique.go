package consumer

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

// releaseUnique gives back the unique key of a task that succeeded or was
// cancelled (and was acknowledged), when it was put with one and still
// holds it: a task of the same key may then be put again before the key's
// ttl. A failed or dead-lettered task keeps its key until the ttl, as
// asynq's Unique does. A release that fails is logged; the key then lasts
// until its ttl.
func (w *Worker) releaseUnique(ctx context.Context, msg jetstream.Msg) {
	w.unique.DoneMsg(ctx, msg.Headers(), w.queue, false)
}
