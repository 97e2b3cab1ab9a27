package consumer

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/task"
)

// publishTimeout bounds a result or dead-letter publish, which runs even
// while the worker stops so that finished work is not lost.
const publishTimeout = 10 * time.Second

// work runs one task message. It never panics on bad input: a message that
// can never succeed is dead-lettered and the worker goes on.
func (w *Worker) work(ctx context.Context, msg jetstream.Msg) {
	h := msg.Headers()
	kind := h.Get(task.HeaderKind)
	attempt := uint64(1)
	if meta, err := msg.Metadata(); err == nil {
		attempt = meta.NumDelivered
	}
	log := w.log.With("task", kind, "index", h.Get(task.HeaderIndex), "run", h.Get(task.HeaderRun), "attempt", attempt)

	reply := h.Get(task.HeaderReply)
	if reply != "" {
		if _, err := strconv.Atoi(h.Get(task.HeaderIndex)); err != nil {
			w.deadLetter(ctx, msg, "bad "+task.HeaderIndex+" header on a task with a reply subject")
			return
		}
	}
	switch {
	case attempt > uint64(w.cfg.MaxDeliver):
		w.reject(ctx, msg, fmt.Sprintf("delivered %d times, over max_deliver %d", attempt, w.cfg.MaxDeliver))
		return
	case kind == "":
		w.reject(ctx, msg, "missing "+task.HeaderKind+" header")
		return
	case !w.reg.Has(kind):
		w.reject(ctx, msg, fmt.Sprintf("%v: %q", task.ErrUnknownKind, kind))
		return
	}
	args, err := task.SplitArgs(msg.Data(), h.Get(task.HeaderChunk))
	if err != nil {
		w.reject(ctx, msg, err.Error())
		return
	}

	log.DebugContext(ctx, "task started")
	start := time.Now()
	outcomes := w.runAll(ctx, msg, kind, args)
	if ctx.Err() != nil {
		// Stopped mid-task: hand it back for another consumer.
		w.settle(ctx, "nak on stop", msg.Nak())
		log.WarnContext(ctx, "task interrupted by stop, handed back")
		return
	}
	failed := countFailed(outcomes)
	if reply == "" && failed > 0 {
		w.deadLetter(ctx, msg, outcomes[0].Error)
		return
	}
	log = log.With("inputs", len(args), "failed", failed, "duration", time.Since(start))
	if reply != "" {
		f, err := w.publishResult(msg, reply, outcomes)
		if err != nil {
			log.ErrorContext(ctx, "publish result failed, task handed back", "error", err)
			w.settle(ctx, "nak", msg.NakWithDelay(retryPause))
			return
		}
		// The task is acked once the result is stored (ackLoop).
		w.acks <- pendingAck{result: f, msg: msg, log: log}
		return
	}
	w.settle(ctx, "ack", msg.Ack())
	log.DebugContext(ctx, "task done")
}

// pendingAck is a task whose result was published asynchronously: the task
// is acked when the stream confirms the result, handed back if it fails.
type pendingAck struct {
	result jetstream.PubAckFuture
	msg    jetstream.Msg
	log    *slog.Logger
}

// ackLoop acks each task once its result is stored. Publishing results
// asynchronously lets a worker go on to its next task instead of waiting a
// round trip per result; acking only after the stream's confirmation keeps
// the at-least-once promise.
func (w *Worker) ackLoop() {
	ctx := context.Background()
	for p := range w.acks {
		t := time.NewTimer(publishTimeout)
		select {
		case <-p.result.Ok():
			w.settle(ctx, "ack", p.msg.Ack())
			p.log.Debug("task done")
		case err := <-p.result.Err():
			p.log.Error("result not stored, task handed back", "error", err)
			w.settle(ctx, "nak", p.msg.NakWithDelay(retryPause))
		case <-t.C:
			p.log.Error("result not confirmed in time, task handed back", "timeout", publishTimeout)
			w.settle(ctx, "nak", p.msg.NakWithDelay(retryPause))
		}
		t.Stop()
	}
}

// ackQueue bounds the results awaiting the stream's confirmation.
const ackQueue = 1024

// runAll runs every input of the message, keeping the lease alive with
// InProgress heartbeats while it works. A labelled task (the Process demo)
// prints its start and finish lines with this process's PID.
func (w *Worker) runAll(ctx context.Context, msg jetstream.Msg, kind string, args []json.RawMessage) []task.Outcome {
	stop := w.heartbeat(msg)
	defer stop()
	label := msg.Headers().Get(task.HeaderLabel)
	out := make([]task.Outcome, len(args))
	for i, a := range args {
		if label != "" {
			fmt.Fprintln(w.cfg.Out, task.StartLine(label, os.Getpid()))
		}
		res, err := w.reg.Run(ctx, kind, a)
		if label != "" {
			fmt.Fprintln(w.cfg.Out, task.FinishLine(label, res, err))
		}
		if err != nil {
			out[i].Error = err.Error()
			continue
		}
		out[i].Result = res
	}
	return out
}

// heartbeat sends InProgress every third of the ack wait until stopped, so a
// long task keeps its lease and is not redelivered while it runs.
func (w *Worker) heartbeat(msg jetstream.Msg) (stop func()) {
	if w.ackWait <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(w.ackWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := msg.InProgress(); err != nil {
					w.log.Warn("heartbeat failed", "error", err)
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

func (w *Worker) publishResult(msg jetstream.Msg, subject string, outcomes []task.Outcome) (jetstream.PubAckFuture, error) {
	body, err := json.Marshal(outcomes)
	if err != nil {
		return nil, err
	}
	h := msg.Headers()
	run, index := h.Get(task.HeaderRun), h.Get(task.HeaderIndex)
	res := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
	res.Header.Set(task.HeaderRun, run)
	res.Header.Set(task.HeaderIndex, index)
	res.Header.Set(task.HeaderChunk, strconv.Itoa(len(outcomes)))
	res.Header.Set(task.HeaderConsumer, w.cfg.Name)
	// A redelivered task's second result carries the same id and is dropped
	// by the results stream's de-duplication window.
	res.Header.Set(task.HeaderMsgID, run+"."+index)
	return w.js.PublishMsgAsync(res)
}

// reject answers a task that can never run: where a producer waits for its
// result, each of its inputs gets the reason as its error (so a map never
// hangs on it), then the message is dead-lettered.
func (w *Worker) reject(ctx context.Context, msg jetstream.Msg, reason string) {
	h := msg.Headers()
	if reply := h.Get(task.HeaderReply); reply != "" {
		n, err := strconv.Atoi(h.Get(task.HeaderChunk))
		if err != nil || n < 1 {
			n = 1
		}
		outcomes := make([]task.Outcome, n)
		for i := range outcomes {
			outcomes[i].Error = reason
		}
		if err := w.awaitResult(ctx, msg, reply, outcomes); err != nil {
			w.log.ErrorContext(ctx, "publish error result failed, task handed back", "error", err)
			w.settle(ctx, "nak", msg.NakWithDelay(retryPause))
			return
		}
	}
	w.deadLetter(ctx, msg, reason)
}

// awaitResult publishes a result and waits until the stream stores it.
func (w *Worker) awaitResult(ctx context.Context, msg jetstream.Msg, reply string, outcomes []task.Outcome) error {
	f, err := w.publishResult(msg, reply, outcomes)
	if err != nil {
		return err
	}
	t := time.NewTimer(publishTimeout)
	defer t.Stop()
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return err
	case <-t.C:
		return fmt.Errorf("result not confirmed within %v", publishTimeout)
	}
}

// deadLetter copies msg with the reason to the dead-letter stream, then
// terminates it (Term deletes it from the WorkQueue stream, so the copy comes
// first). If the copy fails the message is handed back instead: nothing is
// lost.
func (w *Worker) deadLetter(ctx context.Context, msg jetstream.Msg, reason string) {
	dl := &nats.Msg{Subject: task.DeadSubject(w.queue), Data: msg.Data(), Header: nats.Header{}}
	for k, vs := range msg.Headers() {
		if k != task.HeaderMsgID {
			dl.Header[k] = vs
		}
	}
	dl.Header.Set(task.HeaderError, reason)
	dl.Header.Set(task.HeaderSubject, msg.Subject())
	dl.Header.Set(task.HeaderConsumer, w.cfg.Name)
	if meta, err := msg.Metadata(); err == nil {
		dl.Header.Set(task.HeaderDelivered, strconv.FormatUint(meta.NumDelivered, 10))
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	if _, err := w.js.PublishMsg(pctx, dl); err != nil {
		w.log.ErrorContext(ctx, "dead-letter publish failed, message handed back", "error", err, "reason", reason)
		w.settle(ctx, "nak", msg.NakWithDelay(retryPause))
		return
	}
	w.settle(ctx, "term", msg.TermWithReason(reason))
	w.log.WarnContext(ctx, "dead-lettered", "subject", msg.Subject(), "reason", reason)
}

func countFailed(outs []task.Outcome) int {
	n := 0
	for _, o := range outs {
		if o.Error != "" {
			n++
		}
	}
	return n
}
