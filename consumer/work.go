package consumer

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// read parses msg's headers and body. It returns why the message can never
// run, or "".
func (w *Worker) read(msg jetstream.Msg) (*job, string) {
	h := msg.Headers()
	j := &job{msg: msg, kind: h.Get(protocol.HeaderKind), run: h.Get(protocol.HeaderRun),
		reply: h.Get(protocol.HeaderReply), index: -1, attempt: 1, inputs: 1}
	if meta, err := msg.Metadata(); err == nil {
		j.attempt = meta.NumDelivered
	}
	if n, err := strconv.Atoi(h.Get(protocol.HeaderChunk)); err == nil && n >= 1 && n <= maxInputs {
		j.inputs = n
	}
	j.base = w.log
	j.attrs = []any{"task", j.kind, "index", h.Get(protocol.HeaderIndex), "run", j.run, "attempt", j.attempt}
	idx, idxErr := protocol.ParseIndex(h.Get(protocol.HeaderIndex))
	if idxErr == nil {
		j.index = idx
	}
	j.limit, j.limitErr = w.limitOf(j)
	deadline, deadlineErr := time.Parse(time.RFC3339Nano, h.Get(protocol.HeaderDeadline))
	switch {
	case h.Get(protocol.HeaderDeadline) != "" && deadlineErr == nil && time.Now().After(deadline):
		return j, fmt.Sprintf("%s: due by %s, taken %s later", protocol.DeadlineReason,
			deadline.UTC().Format(time.RFC3339Nano), time.Since(deadline).Round(time.Millisecond))
	case h.Get(protocol.HeaderDeadline) != "" && deadlineErr != nil:
		return j, fmt.Sprintf("bad %s header %q: want an RFC 3339 time", protocol.HeaderDeadline, h.Get(protocol.HeaderDeadline))
	case j.limitErr != "":
		return j, j.limitErr
	case j.attempt > uint64(w.cfg.MaxDeliver):
		return j, fmt.Sprintf("delivered %d times, over max_deliver %d", j.attempt, w.cfg.MaxDeliver)
	case j.kind == "":
		return j, "missing " + protocol.HeaderKind + " header"
	case !w.reg.Has(j.kind):
		return j, fmt.Sprintf("%v: %q", task.ErrUnknownKind, j.kind)
	case j.reply != "" && !protocol.IsResultSubject(j.reply):
		reply := j.reply
		j.reply = "" // it cannot be answered there: not even with the reason
		return j, fmt.Sprintf("reply subject %q is not a results subject (%s.<run>): it could never be answered", reply, protocol.ResultsPrefix)
	case j.reply != "" && idxErr != nil:
		return j, idxErr.Error() + " on a task with " + protocol.HeaderReply
	}
	if header := h.Get(protocol.HeaderChunk); header != "" {
		c, err := protocol.ReadChunk(msg.Data(), header)
		if err != nil {
			return j, err.Error()
		}
		j.chunk, j.chunked, j.inputs = c, true, c.N
		return j, ""
	}
	j.args = []json.RawMessage{msg.Data()}
	return j, ""
}

// work runs one task message. It never panics on bad input: a message that
// can never succeed is answered (where it has a reply subject) and
// dead-lettered, and the worker goes on.
func (w *Worker) work(ctx context.Context, msg jetstream.Msg) {
	j, reason := w.read(msg)
	if reason != "" {
		w.reject(ctx, j, reason)
		return
	}
	if !w.claim(ctx, j) {
		return
	}
	j.debug(ctx, "task started")
	w.cfg.Events.TaskStarted(j.kind)
	w.stats.started(j)
	results, outcomes := w.runAll(ctx, j)
	w.stats.finished(j)
	if ctx.Err() != nil {
		// Stopped mid-task: hand it back for another consumer.
		w.nak(ctx, msg, 0, "hand back interrupted task")
		j.logger().WarnContext(ctx, "task interrupted by stop, handed back")
		return
	}
	if j.overLimit > 0 {
		w.overLimit(ctx, j, outcomes)
		return
	}
	failed := failures(j, outcomes)
	took := time.Since(j.began)
	j.attrs = append(j.attrs, "inputs", j.inputs, "failed", failed != "", "duration", took)
	j.log = nil
	if why := retryable(outcomes); why != "" && j.attempt < uint64(w.cfg.MaxDeliver) {
		// Asked for another try, and tries are left: back to the queue
		// after the backoff. A chunk runs again whole.
		d := w.cfg.retryDelay(j.attempt)
		j.logger().WarnContext(ctx, "task failed, retrying after backoff", "error", why,
			"backoff", d.Round(time.Millisecond), "next_attempt", j.attempt+1, "max_deliver", w.cfg.MaxDeliver)
		w.nak(ctx, msg, d, "retry")
		w.cfg.Events.TaskFinished(j.kind, Retried, took)
		return
	}
	if failed != "" {
		w.cfg.Events.TaskFinished(j.kind, Failed, took)
	} else {
		w.cfg.Events.TaskFinished(j.kind, Succeeded, took)
	}
	if j.reply != "" {
		// Settled once its answer is stored (resultLoop).
		w.results <- finished{job: j, answer: protocol.Answer{Index: j.index, Results: results, Outcomes: outcomes}, dead: failed}
		return
	}
	if failed != "" {
		w.deadLetter(ctx, j, failed)
		return
	}
	w.markDone(ctx, j)
	w.ack(ctx, msg)
	w.releaseUnique(ctx, msg)
	j.debug(ctx, "task done")
}

// retryable returns the first error that asked for another try, or "".
// (Outcomes are nil when every input succeeded.)
func retryable(outs []task.Outcome) string {
	for _, o := range outs {
		if o.Retry {
			return o.Error
		}
	}
	return ""
}

// failures names each failed input of a task with its index and error, or
// returns "" when every input succeeded.
func failures(j *job, outs []task.Outcome) string {
	var b strings.Builder
	n := 0
	for i, o := range outs {
		if o.Error == "" || o.Cancelled {
			continue
		}
		n++
		if n > 10 {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		if j.index >= 0 {
			fmt.Fprintf(&b, "input #%d: %s", j.index+i, o.Error)
		} else {
			fmt.Fprintf(&b, "input %d of the message: %s", i, o.Error)
		}
	}
	if n > 10 {
		fmt.Fprintf(&b, "; and %d more failed inputs", n-10)
	}
	return b.String()
}

// runAll runs every input of the message; the lease keeper holds its lease
// meanwhile. A labelled task (the Process demo's) runs input by input and
// tells Config.Labelled as each starts and ends. An input marked cancelled
// does not run; a handler past its time limit is stopped (guard). It
// returns the results as one JSON array when a chunk run as one call
// succeeded whole, else one outcome per input.
func (w *Worker) runAll(ctx context.Context, j *job) (json.RawMessage, []task.Outcome) {
	ctx = task.WithAttempt(ctx, int(j.attempt))
	label := j.msg.Headers().Get(protocol.HeaderLabel)
	if label == "" && j.chunked && !w.anyCancelled(j) {
		// One call for the whole chunk: its limit is the inputs' limits
		// together, and what it exceeds, the chunk does.
		type called struct {
			res task.ChunkResult
			ok  bool
		}
		var c called // written by the call, read only once it returned
		limit := chunkLimit(j.limit, j.inputs)
		end := w.guard(ctx, "", limit, func(ctx context.Context) {
			res, ok := w.reg.CallChunk(ctx, j.kind, j.chunk)
			c = called{res, ok}
		})
		if end == abandoned {
			lost := make([]task.Outcome, j.inputs) // the call may still write c
			for i := range lost {
				lost[i].Error = limitText(limit) + fmt.Sprintf(" (a chunk of %d inputs, run as one call)", len(lost))
			}
			return nil, w.abandon(ctx, j, limit, lost, -1)
		}
		out, ok := c.res.Outcomes, c.ok
		switch {
		case ok && c.res.Results != nil:
			return c.res.Results, nil
		case ok && end == timedOut:
			stopped := false
			for i := range out {
				if out[i].Error != "" {
					out[i] = task.Outcome{Error: limitText(limit) + fmt.Sprintf(" (a chunk of %d inputs, run as one call)", len(out))}
					stopped = true
				}
			}
			if stopped {
				w.count(ctx, protocol.CountTimedOut)
			}
			return nil, out
		case ok:
			return nil, out
		}
	}
	args := j.elems()
	out := make([]task.Outcome, len(args))
	for i, a := range args {
		id := j.inputID(i)
		if w.cancels.has(id) || i == 0 && w.cancels.has(j.msg.Headers().Get(protocol.HeaderTaskID)) {
			out[i] = task.Outcome{Error: protocol.CancelledText, Cancelled: true}
			j.logger().InfoContext(ctx, "cancelled task not run", "task_id", id)
			continue
		}
		track := ""
		if len(args) == 1 && w.cancels != nil {
			track = id // alone in its message: a cancel stops it as it runs
		}
		var res json.RawMessage
		var err error
		end := w.guard(ctx, track, j.limit, func(ctx context.Context) {
			var done func(json.RawMessage, error)
			if label != "" && w.cfg.Labelled != nil {
				done = w.cfg.Labelled(label)
			}
			res, err = w.reg.Call(ctx, j.kind, a)
			if done != nil {
				done(res, err)
			}
		})
		switch {
		case end == abandoned:
			out[i].Error = limitText(j.limit)
			for k := i + 1; k < len(out); k++ {
				out[k].Error = fmt.Sprintf("not run: input #%d of its message was stopped at its time limit", j.index+i)
			}
			return nil, w.abandon(ctx, j, j.limit, out, i)
		case end == cancelled:
			out[i] = task.Outcome{Error: protocol.CancelledText, Cancelled: true}
			j.logger().InfoContext(ctx, "running task cancelled", "task_id", id, "returned", task.ErrorText(err))
			continue
		case end == timedOut && err != nil:
			out[i] = task.Outcome{Error: limitText(j.limit)}
			j.logger().WarnContext(ctx, "task stopped at its time limit", "task_id", id, "limit", j.limit,
				"returned", task.ErrorText(err))
			w.count(ctx, protocol.CountTimedOut)
			continue
		case err != nil:
			out[i] = task.Outcome{Error: task.ErrorText(err), Retry: task.IsRetry(err)}
			continue
		}
		if len(res) > 0 && !task.Valid(res) {
			out[i].Error = "task returned invalid JSON"
			continue
		}
		out[i].Result = res
	}
	return nil, out
}

// chunkLimit is the limit of a chunk of n inputs run as one call: n
// times an input's, at most protocol.MaxTimeout times n without overflow.
func chunkLimit(limit time.Duration, n int) time.Duration {
	if limit <= 0 || n <= 1 {
		return limit
	}
	if limit > math.MaxInt64/time.Duration(n) {
		return math.MaxInt64
	}
	return limit * time.Duration(n)
}

// anyCancelled reports whether an input of j is marked cancelled.
func (w *Worker) anyCancelled(j *job) bool {
	if w.cancels == nil || w.cancels.marks.Load() == 0 {
		return false
	}
	for i := range j.inputs {
		if w.cancels.has(j.inputID(i)) {
			return true
		}
	}
	return false
}

// abandon gives up on j, whose handler (of input i; -1: of the whole
// chunk) ran past its hard time limit, with out its outcomes: the task
// is settled as over its limit (overLimit).
func (w *Worker) abandon(ctx context.Context, j *job, limit time.Duration, out []task.Outcome, i int) []task.Outcome {
	j.overLimit = limit
	j.logger().ErrorContext(ctx, "task abandoned at its hard time limit: this consumer will exit once the rest is settled",
		"task_id", j.inputID(max(i, 0)), "input", i, "limit", limit, "grace", w.cfg.HardTimeoutGrace)
	w.count(ctx, protocol.CountTimedOut)
	return out
}

// overLimit settles a task whose handler was abandoned at its hard time
// limit: answered (where it has a reply subject) and dead-lettered with
// the limit's reason. The worker then stops taking tasks and Run returns
// ErrTimeLimit once what it holds is settled.
func (w *Worker) overLimit(ctx context.Context, j *job, outcomes []task.Outcome) {
	reason := limitText(j.overLimit)
	w.timedOut.Store(true)
	w.stopFetching()
	w.cfg.Events.TaskFinished(j.kind, Failed, time.Since(j.began))
	if j.reply != "" {
		w.results <- finished{job: j, answer: protocol.Answer{Index: j.index, Outcomes: outcomes}, dead: reason}
		return
	}
	w.deadLetter(ctx, j, reason)
}
