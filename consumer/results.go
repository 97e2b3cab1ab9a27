package consumer

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// resultLoop stores the answers of finished tasks and settles each task
// once its answer is stored, which keeps the at-least-once promise. It
// sends what has piled up while it waited for the previous confirmation
// together: no wait when the worker is idle, far fewer broker messages when
// it is busy with many small tasks.
//
// Once the worker is stopping (stop ends) and a store has failed, it stops
// trying: the rest is handed back at once for another consumer, so that a
// failing broker cannot hold a stop for publishTimeout per batch.
func (w *Worker) resultLoop(stop context.Context) {
	ctx := context.Background()
	giveUp := false
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
			if giveUp {
				for _, f := range group {
					w.nak(ctx, f.job.msg, 0, "hand back on stop")
				}
				continue
			}
			err := w.answer(ctx, group)
			giveUp = err != nil && stop.Err() != nil
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

// answer stores the answers of a group of finished tasks and settles each
// task once its answer is stored (or not). A task with a failed input has
// its dead letter stored, and counted, before its answer is published:
// the answer may be the last of a map, and whoever reads the counters and
// the dead letters once the map returns must find the task there; the
// dead letter says its answer follows (answered), so that the map waits
// for that answer rather than failing the task's inputs. A task whose
// dead letter could not be stored is handed back unanswered; it is
// answered when it comes again. It returns the answers' storing error.
func (w *Worker) answer(ctx context.Context, group []finished) error {
	pieces := make([][]piece, len(group))
	limit := w.maxPayload - headerRoom
	for i := range group {
		pieces[i] = w.pieces(&group[i], limit) // may find a result too large: dead
	}
	var keep []finished
	var keptPieces []piece
	for i, f := range group {
		if f.dead != "" && !w.storeDead(ctx, f.job, f.dead, false) {
			continue // handed back
		}
		keep = append(keep, f)
		keptPieces = append(keptPieces, pieces[i]...)
	}
	if len(keep) == 0 {
		return nil
	}
	err := w.storeAnswersOnce(keep, keptPieces)
	w.settleAll(ctx, keep, err)
	return err
}

// settleAll settles the tasks of a group once their answers were stored
// (or not): acked, or terminated for a failed input (its dead letter is
// stored already); handed back when the worker stops, or dead-lettered
// when the answer can never be stored or was not within StoreTimeout.
// A task with a failed input whose answer was not stored gets a second
// dead letter, one that no answer follows: its map fails its inputs.
func (w *Worker) settleAll(ctx context.Context, group []finished, err error) {
	for _, f := range group {
		switch {
		case err == nil && f.dead != "":
			w.terminate(ctx, f.job, f.dead)
		case err == nil:
			w.ack(ctx, f.job.msg)
			w.releaseUnique(ctx, f.job.msg)
			f.job.debug(ctx, "task done")
		default:
			why, now := w.answerFailed(ctx, f.job, err)
			switch {
			case !now: // handed back: the worker stops
			case f.dead != "":
				w.deadLetterUnanswered(ctx, f.job, f.dead+"; "+why)
			default:
				w.deadLetterUnanswered(ctx, f.job, why)
			}
		}
	}
}

// answerFailed decides what becomes of a task whose answer could not be
// stored. It reports now=true, with the reason, when the task must be
// dead-lettered: its reply subject is stored by no stream (it could never
// be answered), or the results stream did not store the answer within
// StoreTimeout (storeAnswersOnce). Otherwise (the worker stops while it
// stores the answer again) it hands the task back for another consumer.
func (w *Worker) answerFailed(ctx context.Context, j *job, err error) (why string, now bool) {
	if w.unstorable(ctx, j.reply, err) {
		return fmt.Sprintf("reply subject %q is stored by no stream", j.reply), true
	}
	if errors.Is(err, errStoreTimeout) {
		return err.Error(), true
	}
	j.logger().ErrorContext(ctx, "answer not stored, task handed back", "error", err, "reply", j.reply)
	w.nak(ctx, j.msg, backoff(j.attempt), "hand back unanswered task")
	return "", false
}

// notice tells the task's producer, over core NATS, that its answer could
// not be stored; the producer fails the map when its results keep failing.
func (w *Worker) notice(j *job, err error) {
	if j.run == "" {
		return
	}
	_ = w.js.Conn().Publish(protocol.NoticeSubject(j.run), []byte(truncate(err.Error(), 1024)))
}

// storeAnswers publishes the answers of one reply subject, encoded as
// pieces, in as few messages as the broker's max payload allows and waits
// until the stream stores them all (awaitAll; changed: the results
// stream's next leader).
func (w *Worker) storeAnswers(group []finished, pieces []piece, changed <-chan struct{}) error {
	limit := w.maxPayload - headerRoom
	var futures []jetstream.PubAckFuture
	var body []byte
	var in []piece
	flush := func() error {
		if len(in) == 0 {
			return nil
		}
		body = append(body, ']')
		f, err := w.js.PublishMsgAsync(w.resultMsg(group, in, body))
		body, in = nil, nil
		if err != nil {
			return err
		}
		futures = append(futures, f)
		return nil
	}
	for _, p := range pieces {
		if len(in) > 0 && len(body)+len(p.b)+1 > limit {
			if err := flush(); err != nil {
				return err
			}
		}
		if len(in) == 0 {
			body = append(body, '[')
		} else {
			body = append(body, ',')
		}
		body = append(body, p.b...)
		in = append(in, p)
	}
	if err := flush(); err != nil {
		return err
	}
	return awaitAll(futures, changed)
}

// piece is one encoded answer, or a part of one.
type piece struct {
	b     []byte
	whole bool
}

// answerOverhead bounds what an answer adds to its outcomes' encoding.
const answerOverhead = 64

// pieces encodes f's answer, in parts where it is over limit: an answer
// too large for one message travels in parts (each an answer for a run of
// its inputs); a single result too large for any message becomes that
// input's error, and the task is dead-lettered for it.
func (w *Worker) pieces(f *finished, limit int) []piece {
	if b := protocol.AppendAnswer(nil, f.answer); len(b) <= limit {
		return []piece{{b: b, whole: true}}
	}
	outs, _ := f.answer.Each() // the consumer's own results: an array
	var out []piece
	for start := 0; start < len(outs); {
		size, end := answerOverhead, start
		for end < len(outs) {
			size1 := len(task.AppendOutcome(nil, outs[end]))
			if size+size1+1 <= limit {
				size += size1 + 1
				end++
				continue
			}
			if end > start {
				break
			}
			why := fmt.Sprintf("result of %d bytes is over the broker's max payload of %d bytes", size1, w.maxPayload)
			f.job.logger().Warn("result too large, answered with an error", "input", f.answer.Index+end, "bytes", size1)
			outs[end] = task.Outcome{Error: why}
			if f.dead == "" {
				f.dead = fmt.Sprintf("input #%d: %s", f.answer.Index+end, why)
			}
		}
		b := protocol.AppendAnswer(nil, protocol.Answer{Index: f.answer.Index + start, Outcomes: outs[start:end]})
		out = append(out, piece{b: b})
		start = end
	}
	f.job.logger().Info("answer sent in parts", "parts", len(out))
	return out
}

// resultMsg is one result message of group carrying the pieces in.
func (w *Worker) resultMsg(group []finished, in []piece, body []byte) *nats.Msg {
	first := group[0].job
	res := &nats.Msg{Subject: first.reply, Data: body, Header: nats.Header{}}
	res.Header.Set(protocol.HeaderRun, first.run)
	res.Header.Set(protocol.HeaderConsumer, w.cfg.Name)
	if len(group) == 1 && len(in) == 1 && in[0].whole && first.index >= 0 {
		// A redelivered task's second result carries the same id and is
		// dropped by the results stream; the producer also keeps only the
		// first answer per index, which covers batches and parts.
		res.Header.Set(protocol.HeaderMsgID, protocol.MsgID(first.run, first.index))
	}
	return res
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
