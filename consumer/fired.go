package consumer

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/protocol"
)

// Fired tasks: a delayed task or a periodic schedule's task reaches the
// task stream by a stream source from PROCQ_SCHED. A firing that reaches
// it twice (a broker killed while sourcing, a leader change) must still
// run once: the first consumer to take a copy claims the firing's id in
// PROCQ_FIRED with the copy's stream sequence; a copy with another
// sequence is a second copy and is dropped. The claimed copy itself may be
// delivered again (its lease ran out, or its acknowledgement was lost with
// a node): it runs again unless it ran to the end, which a task answered
// to nobody marks on its claim ("<seq> done") before it is acknowledged.

// headerStreamSource is set by the broker on a message a stream took
// from a source.
const headerStreamSource = "Nats-Stream-Source"

// claim reports whether j, when it is a fired task, is the copy of its
// firing that runs. It settles the message when not: a second copy is
// acknowledged and dropped, a claim the broker could not record is handed
// back to be tried again.
func (w *Worker) claim(ctx context.Context, j *job) bool {
	h := j.msg.Headers()
	id := h.Get(protocol.HeaderTaskID)
	if id == "" || h.Get(headerStreamSource) == "" {
		return true // not fired: an ordinary task
	}
	if w.topo.Fired == nil {
		w.firedEvents(j)
		return true
	}
	firing := protocol.FiringID(id, h.Get(protocol.HeaderScheduleNext))
	meta, err := j.msg.Metadata()
	if err != nil {
		return true
	}
	key, seq := protocol.FiredKey(w.queue, firing), strconv.FormatUint(meta.Sequence.Stream, 10)
	cctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	rev, err := w.topo.Fired.Create(cctx, key, []byte(seq))
	if err == nil {
		j.claim = &firedClaim{key: key, seq: seq, rev: rev}
		w.firedEvents(j) // counted once: a second copy dropped is not a firing
		return true
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		e, gerr := w.topo.Fired.Get(cctx, key)
		switch {
		case gerr == nil && string(e.Value()) == seq:
			// This copy's own claim: delivered again before it ran to
			// the end (or before that was marked).
			j.claim = &firedClaim{key: key, seq: seq, rev: e.Revision()}
			return true
		case gerr == nil && string(e.Value()) == protocol.CancelledClaim:
			j.logger().InfoContext(ctx, "cancelled delayed task dropped", "task_id", firing)
			w.ack(ctx, j.msg)
			return false
		case gerr == nil && string(e.Value()) == seq+doneMark:
			j.logger().WarnContext(ctx, "fired task ran already; delivered again, dropped", "task_id", firing,
				"seq", seq)
			w.ack(ctx, j.msg)
			return false
		case gerr == nil:
			j.logger().WarnContext(ctx, "second copy of a fired task dropped", "task_id", firing,
				"first_copy_seq", string(e.Value()), "this_copy_seq", seq)
			w.ack(ctx, j.msg)
			return false
		}
		err = gerr
	}
	j.logger().WarnContext(ctx, "fired task not claimed; handed back", "task_id", firing, "error", err,
		"waiting_for", "the broker to record the claim")
	w.nak(ctx, j.msg, retryPause, "hand back unclaimed fired task")
	return false
}

// firedClaim is the claim a fired task runs under.
type firedClaim struct {
	key, seq string
	rev      uint64
}

// doneMark ends a claim's value once its task ran to the end.
const doneMark = " done"

// markDone records on j's claim that its task ran to the end, so that a
// redelivery of the same copy (an acknowledgement lost with a node) is
// dropped, not run again. A mark that fails is logged: the task is then
// acknowledged all the same and runs again only if that is lost too.
func (w *Worker) markDone(ctx context.Context, j *job) {
	if j.claim == nil {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	if _, err := w.topo.Fired.Update(cctx, j.claim.key, []byte(j.claim.seq+doneMark), j.claim.rev); err != nil {
		j.logger().WarnContext(ctx, "fired task's end not recorded", "key", j.claim.key, "error", err)
	}
}

// firedEvents tells Events of a fired task it claimed: its schedule, and
// how late it starts against its due time (when it has one).
func (w *Worker) firedEvents(j *job) {
	h := j.msg.Headers()
	late := time.Duration(-1)
	if due, err := time.Parse(time.RFC3339Nano, h.Get(protocol.HeaderDue)); err == nil {
		late = max(time.Since(due), 0)
	}
	w.cfg.Events.TaskFired(h.Get(protocol.HeaderSchedule), late)
}

// delayed counts what run still has in PROCQ_SCHED: delayed tasks not
// fired yet and firings not yet in the task stream.
func (w *Worker) delayed(ctx context.Context, run string) (uint64, error) {
	if w.topo.Sched == nil {
		return 0, nil
	}
	var n uint64
	for _, f := range protocol.RunDelayedFilters(w.queue, run) {
		c, err := protocol.Count(ctx, w.topo.Sched, f)
		if err != nil {
			return 0, err
		}
		n += c
	}
	return n, nil
}
