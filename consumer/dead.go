package consumer

import (
	"context"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// reject settles a task that can never run: where it has a reply subject,
// each of its inputs is answered with the reason as its error (so a map
// never hangs on it), then the message is dead-lettered with the reason.
func (w *Worker) reject(ctx context.Context, j *job, reason string) {
	if j.reply != "" {
		outcomes := make([]task.Outcome, j.inputs)
		for i := range outcomes {
			outcomes[i].Error = reason
		}
		f := finished{job: j, answer: protocol.Answer{Index: j.index, Outcomes: outcomes}}
		if err := w.storeAnswers([]finished{f}); err != nil {
			why, now := w.answerFailed(ctx, j, err)
			if !now {
				return
			}
			reason += "; " + why
		}
	}
	w.deadLetter(ctx, j, reason)
}

// deadLetter copies the task's message with the reason to the dead-letter
// stream, then terminates it (Term deletes it from the WorkQueue stream, so
// the copy comes first). If the copy fails the message is handed back
// instead, to come again after a backoff: nothing is lost.
func (w *Worker) deadLetter(ctx context.Context, j *job, reason string) {
	dl := w.deadMsg(j, reason)
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	if _, err := w.js.PublishMsg(pctx, dl); err != nil {
		j.logger().ErrorContext(ctx, "dead-letter publish failed, message handed back", "error", err, "reason", reason)
		w.nak(ctx, j.msg, backoff(j.attempt), "hand back undead-lettered message")
		return
	}
	w.term(ctx, j.msg, reason)
	w.cfg.Events.DeadLettered(j.kind)
	j.logger().WarnContext(ctx, "dead-lettered", "subject", j.msg.Subject(), "reason", reason)
}

// deadMsg is the dead letter of j: the original headers and body, with the
// original Nats-Msg-Id renamed to Procq-Msg-Id, plus the reason, the
// original subject, the delivery count and this consumer's name. A body
// too large to fit the broker's max payload with the headers is cut, and
// Procq-Trimmed gives its original size.
func (w *Worker) deadMsg(j *job, reason string) *nats.Msg {
	msg := j.msg
	dl := &nats.Msg{Subject: protocol.DeadSubject(w.queue), Data: msg.Data(), Header: nats.Header{}}
	for k, vs := range msg.Headers() {
		if k == protocol.HeaderMsgID {
			dl.Header[protocol.HeaderOrigMsgID] = vs
			continue
		}
		dl.Header[k] = vs
	}
	dl.Header.Set(protocol.HeaderError, truncate(reason, 4096))
	dl.Header.Set(protocol.HeaderSubject, msg.Subject())
	dl.Header.Set(protocol.HeaderConsumer, w.cfg.Name)
	dl.Header.Set(protocol.HeaderDelivered, strconv.FormatUint(j.attempt, 10))
	room := w.maxPayload - headerSize(dl.Header) - 512
	if len(dl.Data) > room {
		dl.Header.Set(protocol.HeaderTrimmed, strconv.Itoa(len(dl.Data)))
		dl.Data = dl.Data[:max(room, 0)]
	}
	return dl
}

// headerSize is about what h takes on the wire.
func headerSize(h nats.Header) int {
	n := len("NATS/1.0\r\n\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}
