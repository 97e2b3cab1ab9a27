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
		// Acked once its result is stored (resultLoop).
		index, _ := strconv.Atoi(h.Get(task.HeaderIndex))
		w.results <- finished{msg: msg, reply: reply, run: h.Get(task.HeaderRun),
			answer: task.Answer{Index: index, Outcomes: outcomes}, log: log}
		return
	}
	w.settle(ctx, "ack", msg.Ack())
	log.DebugContext(ctx, "task done")
}

// finished is a task whose result waits to be published.
type finished struct {
	msg    jetstream.Msg
	reply  string
	run    string
	answer task.Answer
	log    *slog.Logger
}

// maxBatch caps the answers one result message carries.
const maxBatch = 128

// resultLoop publishes the results of finished tasks and acks each task once
// its result is stored, which keeps the at-least-once promise. It sends what
// has piled up while it waited for the previous confirmation as one message:
// no wait when the worker is idle, far fewer broker messages when it is busy
// with many small tasks.
func (w *Worker) resultLoop() {
	for {
		first, ok := <-w.results
		if !ok {
			return
		}
		batch := []finished{first}
	fill:
		for len(batch) < maxBatch {
			select {
			case f, ok := <-w.results:
				if !ok {
					break fill
				}
				batch = append(batch, f)
			default:
				break fill
			}
		}
		for _, group := range byReply(batch) {
			w.settleAll(group, w.storeResults(group))
		}
	}
}

// byReply splits a batch by result subject, keeping order.
func byReply(batch []finished) [][]finished {
	if len(batch) == 1 || allSame(batch) {
		return [][]finished{batch}
	}
	idx := map[string]int{}
	var groups [][]finished
	for _, f := range batch {
		i, ok := idx[f.reply]
		if !ok {
			i = len(groups)
			idx[f.reply] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], f)
	}
	return groups
}

func allSame(batch []finished) bool {
	for _, f := range batch[1:] {
		if f.reply != batch[0].reply {
			return false
		}
	}
	return true
}

// storeResults publishes one result message for group and waits until the
// stream stores it.
func (w *Worker) storeResults(group []finished) error {
	answers := make([]task.Answer, len(group))
	for i, f := range group {
		answers[i] = f.answer
	}
	body, err := json.Marshal(answers)
	if err != nil {
		return err
	}
	res := &nats.Msg{Subject: group[0].reply, Data: body, Header: nats.Header{}}
	res.Header.Set(task.HeaderRun, group[0].run)
	res.Header.Set(task.HeaderConsumer, w.cfg.Name)
	if len(group) == 1 {
		// A redelivered task's second result carries the same id and is
		// dropped by the results stream; the producer also keeps only the
		// first answer per index, which covers batches.
		res.Header.Set(task.HeaderMsgID, task.MsgID(group[0].run, group[0].answer.Index))
	}
	f, err := w.js.PublishMsgAsync(res)
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

// settleAll acks the tasks whose results were stored, or hands them back.
func (w *Worker) settleAll(group []finished, err error) {
	ctx := context.Background()
	for _, f := range group {
		if err != nil {
			f.log.Error("result not stored, task handed back", "error", err)
			w.settle(ctx, "nak", f.msg.NakWithDelay(retryPause))
			continue
		}
		w.settle(ctx, "ack", f.msg.Ack())
		f.log.Debug("task done")
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
		index, _ := strconv.Atoi(h.Get(task.HeaderIndex))
		one := []finished{{msg: msg, reply: reply, run: h.Get(task.HeaderRun),
			answer: task.Answer{Index: index, Outcomes: outcomes}}}
		if err := w.storeResults(one); err != nil {
			w.log.ErrorContext(ctx, "publish error result failed, task handed back", "error", err)
			w.settle(ctx, "nak", msg.NakWithDelay(retryPause))
			return
		}
	}
	w.deadLetter(ctx, msg, reason)
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
