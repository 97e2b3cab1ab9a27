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
	// A claim the broker cannot record now (its bucket electing a leader)
	// is tried again here, the task's lease held meanwhile, rather than
	// handed back: a hand-back is a delivery, and max_deliver of them
	// would dead-letter a task that never ran.
	pause := retryPause
	deadline := time.Now().Add(claimRetryFor)
	for attempt := 1; ; attempt++ {
		done, ok, err := w.tryClaim(ctx, j, firing, key, seq)
		if err == nil {
			return ok && !done
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			j.logger().WarnContext(ctx, "fired task not claimed; handed back", "task_id", firing, "error", err,
				"tries", attempt)
			w.nak(ctx, j.msg, retryPause, "hand back unclaimed fired task")
			return false
		}
		if attempt == 1 {
			j.logger().WarnContext(ctx, "fired task not claimed yet; trying again", "task_id", firing, "error", err,
				"waiting_for", "the broker to record the claim", "for_at_most", claimRetryFor)
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// claimRetryFor bounds the tries of a claim the broker does not record.
const claimRetryFor = 30 * time.Second

// tryClaim tries once to claim j's firing under key with its sequence.
// It reports ok when j is the copy that runs, and done when j was settled
// (dropped) instead; an error when the broker could not tell.
func (w *Worker) tryClaim(ctx context.Context, j *job, firing, key, seq string) (done, ok bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	rev, err := w.topo.Fired.Create(cctx, key, []byte(seq))
	if err == nil {
		j.claim = &firedClaim{key: key, seq: seq, rev: rev}
		w.firedEvents(j) // counted once: a second copy dropped is not a firing
		return false, true, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return false, false, err
	}
	e, err := w.topo.Fired.Get(cctx, key)
	if err != nil {
		return false, false, err
	}
	switch string(e.Value()) {
	case seq:
		// This copy's own claim: delivered again before it ran to the
		// end (or before that was marked).
		j.claim = &firedClaim{key: key, seq: seq, rev: e.Revision()}
		return false, true, nil
	case protocol.CancelledClaim:
		j.logger().InfoContext(ctx, "cancelled delayed task dropped", "task_id", firing)
	case seq + doneMark:
		j.logger().WarnContext(ctx, "fired task ran already; delivered again, dropped", "task_id", firing, "seq", seq)
	default:
		j.logger().WarnContext(ctx, "second copy of a fired task dropped", "task_id", firing,
			"first_copy_seq", string(e.Value()), "this_copy_seq", seq)
	}
	w.ack(ctx, j.msg)
	return true, false, nil
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
