package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/task"
)

// finished is a task whose answer waits to be stored. dead, when set, is
// why the task is dead-lettered once its answer is stored (an input
// failed).
type finished struct {
	job    *job
	answer task.Answer
	dead   string
}

// maxBatch caps the answers the result loop gathers at once.
const maxBatch = 128

// ackQueue bounds the answers awaiting storage.
const ackQueue = 1024

// headerRoom is the part of the broker's max payload kept for a result
// message's headers.
const headerRoom = 4 << 10

// resultLoop stores the answers of finished tasks and settles each task
// once its answer is stored, which keeps the at-least-once promise. It
// sends what has piled up while it waited for the previous confirmation
// together: no wait when the worker is idle, far fewer broker messages when
// it is busy with many small tasks.
func (w *Worker) resultLoop() {
	ctx := context.Background()
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
			w.settleAll(ctx, group, w.storeAnswers(group))
		}
	}
}

// byReply splits a batch by reply subject and run, keeping order.
func byReply(batch []finished) [][]finished {
	idx := map[[2]string]int{}
	var groups [][]finished
	for _, f := range batch {
		k := [2]string{f.job.reply, f.job.run}
		i, ok := idx[k]
		if !ok {
			i = len(groups)
			idx[k] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], f)
	}
	return groups
}

// settleAll settles the tasks of a group once their answers were stored
// (or not): acked, dead-lettered for a failed input, handed back for a
// later try, or dead-lettered when the answer can never be stored.
func (w *Worker) settleAll(ctx context.Context, group []finished, err error) {
	for _, f := range group {
		switch {
		case err == nil && f.dead != "":
			w.deadLetter(ctx, f.job, f.dead)
		case err == nil:
			w.ack(ctx, f.job.msg)
			f.job.log.Debug("task done")
		default:
			if why, now := w.answerFailed(ctx, f.job, err); now {
				w.deadLetter(ctx, f.job, why)
			}
		}
	}
}

// storeAnswers publishes the answers of one reply subject in as few
// messages as the broker's max payload allows and waits until the stream
// stores them all. An answer too large for any message becomes an error
// for each of its inputs.
func (w *Worker) storeAnswers(group []finished) error {
	limit := w.maxPayload - headerRoom
	var futures []jetstream.PubAckFuture
	var body []byte
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		body = append(body, ']')
		f, err := w.js.PublishMsgAsync(w.resultMsg(group, n, body))
		body, n = nil, 0
		if err != nil {
			return err
		}
		futures = append(futures, f)
		return nil
	}
	for i := range group {
		b, err := w.encodeAnswer(&group[i], limit)
		if err != nil {
			return err
		}
		if n > 0 && len(body)+len(b)+1 > limit {
			if err := flush(); err != nil {
				return err
			}
		}
		if n == 0 {
			body = append(body, '[')
		} else {
			body = append(body, ',')
		}
		body = append(body, b...)
		n++
	}
	if err := flush(); err != nil {
		return err
	}
	return awaitAll(futures)
}

// encodeAnswer encodes f's answer; one over limit is replaced by an error
// per input that says so.
func (w *Worker) encodeAnswer(f *finished, limit int) ([]byte, error) {
	b, err := json.Marshal(f.answer)
	if err != nil || len(b) <= limit {
		return b, err
	}
	why := fmt.Sprintf("result of %d bytes is over the broker's max payload of %d bytes", len(b), w.maxPayload)
	f.job.log.Warn("answer too large, answered with an error", "bytes", len(b), "max_payload", w.maxPayload)
	out := make([]task.Outcome, len(f.answer.Outcomes))
	for i := range out {
		out[i].Error = why
	}
	f.answer.Outcomes = out
	if f.dead == "" {
		f.dead = why
	}
	return json.Marshal(f.answer)
}

// resultMsg is one result message of group carrying n answers.
func (w *Worker) resultMsg(group []finished, n int, body []byte) *nats.Msg {
	first := group[0].job
	res := &nats.Msg{Subject: first.reply, Data: body, Header: nats.Header{}}
	res.Header.Set(task.HeaderRun, first.run)
	res.Header.Set(task.HeaderConsumer, w.cfg.Name)
	if n == 1 && len(group) == 1 && first.index >= 0 {
		// A redelivered task's second result carries the same id and is
		// dropped by the results stream; the producer also keeps only the
		// first answer per index, which covers batches.
		res.Header.Set(task.HeaderMsgID, task.MsgID(first.run, first.index))
	}
	return res
}

// awaitAll waits up to publishTimeout for the stream to confirm every
// publish.
func awaitAll(futures []jetstream.PubAckFuture) error {
	t := time.NewTimer(publishTimeout)
	defer t.Stop()
	var errs []error
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs = append(errs, err)
		case <-t.C:
			return errors.Join(append(errs, fmt.Errorf("result not confirmed within %v", publishTimeout))...)
		}
	}
	return errors.Join(errs...)
}

// unstorable reports whether a publish to subject failed because no stream
// stores that subject, as the server itself confirms; a failure of any
// other kind (the broker restarting, say) may pass.
func (w *Worker) unstorable(ctx context.Context, subject string, err error) bool {
	if !errors.Is(err, jetstream.ErrNoStreamResponse) && !errors.Is(err, nats.ErrNoResponders) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	_, lerr := w.js.StreamNameBySubject(ctx, subject)
	return errors.Is(lerr, jetstream.ErrStreamNotFound)
}
