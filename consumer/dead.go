package consumer

import (
	"context"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// reject settles a task that can never run: it is dead-lettered with the
// reason and, where it has a reply subject, each of its inputs is answered
// with the reason as its error (so a map never hangs on it), the dead
// letter first, as for a task that ran (answer).
func (w *Worker) reject(ctx context.Context, j *job, reason string) {
	if j.reply == "" {
		w.deadLetter(ctx, j, reason)
		return
	}
	outcomes := make([]task.Outcome, j.inputs)
	for i := range outcomes {
		outcomes[i].Error = reason
	}
	_ = w.answer(ctx, []finished{{job: j, answer: protocol.Answer{Index: j.index, Outcomes: outcomes}, dead: reason}})
}

// deadLetter stores the task's dead letter, one that no answer follows,
// then terminates the task.
func (w *Worker) deadLetter(ctx context.Context, j *job, reason string) {
	if w.storeDead(ctx, j, reason, false) {
		w.terminate(ctx, j, reason)
	}
}

// deadLetterUnanswered is deadLetter for a task whose answer will never
// be stored: the dead letter says so, and the task's map fails its inputs
// from it.
func (w *Worker) deadLetterUnanswered(ctx context.Context, j *job, reason string) {
	if w.storeDead(ctx, j, reason, true) {
		w.terminate(ctx, j, reason)
	}
}

// storeDead copies the task's message with the reason to the dead-letter
// stream and tells Events once the stream has stored it. unanswered marks
// a dead letter no answer follows (protocol.HeaderUnanswered): a map fails
// the inputs of a dead letter of its own so marked. If the copy
// fails the message is handed back instead, to come again after a
// backoff: nothing is lost; storeDead then reports false.
func (w *Worker) storeDead(ctx context.Context, j *job, reason string, unanswered bool) bool {
	dl := w.deadMsg(j, reason)
	if unanswered {
		dl.Header.Set(protocol.HeaderUnanswered, "1")
	}
	// One dead letter per task (and one more for its answer never
	// stored): a task delivered again before the broker applied its Term
	// (a broker slow to apply it, fsyncing every write under load, past
	// the ack wait) is dead-lettered again, and the dead-letter stream
	// drops the repeated id.
	if meta, err := j.msg.Metadata(); err == nil {
		id := "dead." + meta.Stream + "." + strconv.FormatUint(meta.Sequence.Stream, 10)
		if unanswered {
			id += ".unanswered"
		}
		dl.Header.Set(nats.MsgIdHdr, id)
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	ack, err := w.js.PublishMsg(pctx, dl)
	if err != nil {
		j.logger().ErrorContext(ctx, "dead-letter publish failed, message handed back", "error", err, "reason", reason)
		w.nak(ctx, j.msg, backoff(j.attempt), "hand back undead-lettered message")
		return false
	}
	if ack.Duplicate {
		j.logger().InfoContext(ctx, "dead letter stored already: the task came again before its removal", "reason", reason)
		return true
	}
	w.cfg.Events.DeadLettered(j.kind)
	return true
}

// terminate ends a task whose dead letter is stored: Term deletes it from
// the WorkQueue stream, so the copy comes first.
func (w *Worker) terminate(ctx context.Context, j *job, reason string) {
	w.term(ctx, j.msg, reason)
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
		if protocol.BrokerSet(k) || k == protocol.HeaderUnanswered {
			continue // a fired copy's: refused on a client's publish; a stale mark
		}
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
