package consumer

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/procq/procq/protocol"
)

// sentinel applies the run protocol (protocol.JudgeSentinel) to a message on
// the sentinel subject and reports whether the worker must stop.
func (w *Worker) sentinel(ctx context.Context, msg jetstream.Msg) bool {
	h := msg.Headers()
	c := protocol.SentinelCase{
		IsSentinel: h.Get(protocol.HeaderSentinel) == "1",
		Run:        h.Get(protocol.HeaderRun),
		Bound:      w.cfg.Run,
		Skip:       w.skipRun,
		Took:       w.took.Load(),
	}
	log := w.log.With("run", c.Run)
	if c.IsSentinel && c.Run != "" && !c.Took {
		current, err := w.currentRun(ctx)
		if err == nil {
			c.Current = current.Run
			// PROCQ_SCHED before the queue: a firing moves from the one to
			// the other (stored in the queue before it leaves the
			// schedules), so read in that order it is counted at least once.
			c.Delayed, err = w.delayed(ctx, c.Run)
		}
		if err == nil {
			c.Unfinished, err = w.unfinished(ctx, c.Run)
		}
		if err != nil {
			log.WarnContext(ctx, "cannot judge sentinel; handed back", "error", err)
			w.nak(ctx, msg, w.cfg.SentinelRetry, "hand back sentinel")
			return false
		}
	}
	verdict := protocol.JudgeSentinel(c)
	switch verdict {
	case protocol.SentinelReject:
		j, _ := w.read(msg)
		w.deadLetter(ctx, j, "not a sentinel: a message on the sentinel subject needs "+
			protocol.HeaderSentinel+": 1 and "+protocol.HeaderRun)
	case protocol.SentinelDrop:
		log.WarnContext(ctx, "dropped stale sentinel", "current_run", c.Current, "skip_run", c.Skip)
		w.ack(ctx, msg)
	case protocol.SentinelPass:
		w.nak(ctx, msg, w.cfg.SentinelRetry, "pass sentinel on")
	case protocol.SentinelWait:
		log.InfoContext(ctx, "sentinel waits for unfinished work of its run",
			"unfinished", c.Unfinished, "delayed", c.Delayed, "waiting_for", "the run's unfinished and delayed tasks")
		w.nak(ctx, msg, w.cfg.SentinelRetry, "hand back sentinel")
	case protocol.SentinelTake:
		return w.take(ctx, msg, log)
	}
	return false
}

// take acknowledges the worker's sentinel (confirmed: it must be gone
// before the process exits) and reports whether the worker stops.
func (w *Worker) take(ctx context.Context, msg jetstream.Msg, log *slog.Logger) bool {
	if !w.took.CompareAndSwap(false, true) {
		w.nak(ctx, msg, 0, "pass sentinel on")
		return false
	}
	w.leases.release(msg)
	if err := msg.DoubleAck(context.WithoutCancel(ctx)); err != nil {
		w.took.Store(false)
		log.ErrorContext(ctx, "ack sentinel failed", "error", err)
		return false
	}
	log.InfoContext(ctx, "received sentinel")
	fmt.Fprintf(w.cfg.Out, "Consumer %s: Received sentinel, exiting.\n", w.cfg.Name)
	return true
}

// currentRun reads the queue's run record; a queue that never had a run
// gives the zero record.
func (w *Worker) currentRun(ctx context.Context) (protocol.RunRecord, error) {
	return protocol.ReadRun(ctx, w.topo.Runs, w.queue)
}

// unfinished counts the work messages of run still in the stream, at
// every priority: queued, held, or waiting for redelivery (WorkQueue
// retention deletes a message once it is acked). Only the run's own
// subjects count, so work that other clients put on the queue never holds
// up a run's sentinels.
func (w *Worker) unfinished(ctx context.Context, run string) (uint64, error) {
	var n uint64
	for _, f := range protocol.RunFilters(w.queue, run) {
		c, err := protocol.Count(ctx, w.topo.Tasks, f)
		if err != nil {
			return 0, err
		}
		n += c
	}
	return n, nil
}

// overRun returns the queue's run if it was already over when the worker
// started: closed by its producer and without unfinished work. Its leftover
// sentinels are not for this worker.
func (w *Worker) overRun(ctx context.Context) (string, error) {
	rec, err := w.currentRun(ctx)
	if err != nil || rec.State != protocol.RunClosed {
		return "", err
	}
	n, err := w.delayed(ctx, rec.Run) // PROCQ_SCHED first, as sentinel reads
	if err != nil || n > 0 {
		return "", err
	}
	if n, err = w.unfinished(ctx, rec.Run); err != nil || n > 0 {
		return "", err
	}
	return rec.Run, nil
}
