package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/task"
)

// sentinel decides what a sentinel means for this worker and reports whether
// the worker must stop:
//   - a sentinel of a run other than the queue's current run, or of a run that
//     was already over when the worker started, is stale: it is removed and
//     the worker goes on;
//   - while the queue still holds unfinished work (say, a task whose consumer
//     was killed, waiting for redelivery), the sentinel is handed back with a
//     delay, so live consumers finish that work before they exit;
//   - otherwise the worker takes it and stops.
func (w *Worker) sentinel(ctx context.Context, msg jetstream.Msg) bool {
	run := msg.Headers().Get(task.HeaderRun)
	log := w.log.With("run", run)
	if w.honored.Load() {
		// One sentinel per consumer: leave this one to another consumer.
		w.settle(ctx, "nak sentinel", msg.Nak())
		return false
	}
	current, err := w.currentRun(ctx)
	if err != nil {
		log.WarnContext(ctx, "cannot read current run", "error", err)
		w.settle(ctx, "nak sentinel", msg.NakWithDelay(w.cfg.SentinelRetry))
		return false
	}
	if run == w.skipRun || run != current.Run {
		log.WarnContext(ctx, "dropped stale sentinel", "current_run", current.Run)
		w.settle(ctx, "ack stale sentinel", msg.Ack())
		return false
	}
	unfinished, err := w.unfinished(ctx)
	if err != nil {
		log.WarnContext(ctx, "cannot count unfinished work", "error", err)
	}
	if err != nil || unfinished > 0 {
		log.InfoContext(ctx, "sentinel waits for unfinished work", "unfinished", unfinished)
		w.settle(ctx, "nak sentinel", msg.NakWithDelay(w.cfg.SentinelRetry))
		return false
	}
	if !w.honored.CompareAndSwap(false, true) {
		w.settle(ctx, "nak sentinel", msg.Nak())
		return false
	}
	// Confirmed ack: the sentinel must be gone before the process exits.
	if err := msg.DoubleAck(context.WithoutCancel(ctx)); err != nil {
		w.honored.Store(false)
		log.ErrorContext(ctx, "ack sentinel failed", "error", err)
		return false
	}
	log.InfoContext(ctx, "received sentinel")
	fmt.Fprintf(w.cfg.Out, "Consumer %s: Received sentinel, exiting.\n", w.cfg.Name)
	return true
}

// currentRun reads the queue's run record; a queue that never had a run
// gives the zero record.
func (w *Worker) currentRun(ctx context.Context) (task.RunRecord, error) {
	var rec task.RunRecord
	e, err := w.topo.Runs.Get(ctx, w.queue)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return rec, nil
	}
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return rec, fmt.Errorf("run record of %s: %w", w.queue, err)
	}
	return rec, nil
}

// unfinished counts the queue's work messages still in the stream: queued,
// in flight, or waiting for redelivery. WorkQueue retention deletes a
// message once it is acked.
func (w *Worker) unfinished(ctx context.Context) (uint64, error) {
	info, err := w.topo.Tasks.Info(ctx, jetstream.WithSubjectFilter(task.WorkFilter(w.queue)))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, nil
}

// overRun returns the queue's run if it was already over when the worker
// started: closed by its producer and without unfinished work. Its leftover
// sentinels are not for this worker.
func (w *Worker) overRun(ctx context.Context) (string, error) {
	rec, err := w.currentRun(ctx)
	if err != nil || rec.State != task.RunClosed {
		return "", err
	}
	n, err := w.unfinished(ctx)
	if err != nil || n > 0 {
		return "", err
	}
	return rec.Run, nil
}

// settle logs a failed ack, nak or term; the message then comes back after
// the ack wait, which is safe.
func (w *Worker) settle(ctx context.Context, what string, err error) {
	if err != nil {
		w.log.WarnContext(ctx, what+" failed", "error", err)
	}
}
