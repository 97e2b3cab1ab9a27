package producer

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/link"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// sentChunk is a task message published asynchronously.
type sentChunk struct {
	msg    *nats.Msg
	stored jetstream.PubAckFuture
	at     time.Time // when it was published
}

// published is what the publisher reports when it stops: how many inputs
// it submitted and why it stopped early, if it did.
type published struct {
	total int
	err   error
}

// publish submits the inputs in chunks, holding a window slot per chunk.
// It returns how many inputs it submitted and, when it stopped early, why.
// A chunk's inputs are encoded in one call; only a chunk that outgrows its
// byte budget (big inputs) is encoded input by input, and split.
func (m *mapping) publish(ctx context.Context, inputs Inputs) published {
	submitted := 0
	send := func(body []byte, n int) error {
		select {
		case m.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := m.takeInputs(ctx, n); err != nil {
			<-m.slots
			return err
		}
		m.mu.Lock()
		m.pending[submitted] = n
		m.mu.Unlock()
		if err := m.send(ctx, submitted, body, n); err != nil {
			// The chunk's room goes back only if collect did not complete
			// it meanwhile (a cancel answers an input at once; a stored
			// chunk may be answered while a retried publish fails): it
			// gives the room back itself then.
			m.mu.Lock()
			_, still := m.pending[submitted]
			delete(m.pending, submitted)
			m.mu.Unlock()
			if still {
				m.freeInputs(n)
				<-m.slots
			}
			return err
		}
		submitted += n
		m.progress.submitted.Store(int64(submitted))
		return nil
	}
	stop := func(err error) published {
		m.mu.Lock()
		m.notSubmitted = submitted
		m.mu.Unlock()
		return published{total: submitted, err: err}
	}
	if err := m.waitStart(ctx); err != nil {
		return stop(err)
	}
	budget := chunkBytes(m.pool.q.js.Conn().MaxPayload())
	for b := range inputs.batches(m.chunk) {
		var err error
		switch {
		case b.len() == 1:
			var raw []byte
			if raw, err = task.Marshal(b.at(0)); err != nil {
				err = fmt.Errorf("input #%d: %w", submitted, err)
				break
			}
			err = send(raw, 1)
		default:
			// Big inputs (the first one's size times the batch over the
			// budget) go input by input at once, not encoded whole first.
			if first, merr := task.Marshal(b.at(0)); merr == nil && (len(first)+1)*b.len() <= budget {
				if body, merr := b.marshal(); merr == nil && len(body) <= budget {
					err = send(body, b.len())
					break
				}
			}
			err = m.sendSplit(b, budget, submitted, send)
		}
		if err != nil {
			return stop(err)
		}
	}
	return published{total: submitted}
}

// sendSplit sends a batch too big for one message (or with an input that
// cannot be encoded, which it names): each input encoded alone, a chunk
// ending early rather than outgrow budget.
func (m *mapping) sendSplit(b batch, budget, first int, send func(body []byte, n int) error) error {
	var part []json.RawMessage
	size := 0 // of part's encoded inputs
	sendPart := func() error {
		if len(part) == 0 {
			return nil
		}
		body := part[0]
		if len(part) > 1 {
			body = joinArray(part)
		}
		err := send(body, len(part))
		part, size = part[:0], 0
		return err
	}
	for i := range b.len() {
		raw, err := task.Marshal(b.at(i))
		if err != nil {
			return fmt.Errorf("input #%d: %w", first+i, err)
		}
		if len(part) > 0 && size+len(raw)+1 > budget {
			if err := sendPart(); err != nil {
				return err
			}
		}
		part = append(part, raw)
		size += len(raw) + 1
	}
	return sendPart()
}

// send publishes one task message of n inputs (body is a JSON array of
// them when n > 1) without waiting for the stream's ack; confirm checks
// the acks in the background. Waiting a round trip per message would cap a
// map at the broker's request rate.
func (m *mapping) send(ctx context.Context, start int, body []byte, n int) error {
	q := m.pool.q
	msg := q.taskMsg(m.id, start, m.kind, nil)
	msg.Subject = m.subject
	if n > 1 {
		msg.Header.Set(protocol.HeaderChunk, strconv.Itoa(n))
	}
	msg.Data = body
	msg.Header.Set(protocol.HeaderReply, protocol.ResultSubject(m.id))
	m.opts.SetHeaders(msg.Header)
	m.chunks++
	if l := m.pool.cfg.Label; l != "" {
		msg.Header.Set(protocol.HeaderLabel, l+"-"+strconv.Itoa(m.chunks))
	}
	if m.opts.Unique != "" {
		return m.sendUnique(ctx, msg)
	}
	if m.opts.Delayed() {
		return m.sendDelayed(ctx, msg)
	}
	f, err := q.js.PublishMsgAsync(msg)
	if err != nil {
		return fmt.Errorf("submit #%d: %w", start, err)
	}
	select {
	case m.sent <- sentChunk{msg: msg, stored: f, at: time.Now()}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// confirm waits for the stream's ack of every chunk sent. A chunk the
// stream refused or did not acknowledge is published again (its
// Nats-Msg-Id makes a duplicate harmless): the first synchronously, as
// TaskQueue.Put does (a full stream or a broker that does not answer is
// retried for up to queue.put_timeout), and the others the same loss left
// behind it together, each again synchronously only should that fail.
// Any other failure stops the map.
//
// An acknowledgement that never comes (the publish went to a stream
// leader that died with it) counts as a refusal once the stream elected
// a new leader after the publish (its LEADER_ELECTED advisory, or the
// connection re-established), or after publishAckWait should no advisory
// come: without that bound the chunk would never be stored, never
// answered, and the map would wait for it forever.
func (m *mapping) confirm(ctx context.Context) {
	elected := link.Watch(m.pool.q.js.Conn(), link.StreamLeaderElected(protocol.TasksStream))
	defer elected.Close()
	timer := time.NewTimer(publishAckWait)
	defer timer.Stop()
	var warned time.Time // a leader's death leaves hundreds: one line a second
	unacked := 0
	var held *sentChunk // taken from m.sent while gathering a burst, not lost
	for {
		var sc sentChunk
		if held != nil {
			sc, held = *held, nil
		} else {
			var ok bool
			if sc, ok = <-m.sent; !ok {
				return
			}
		}
		timer.Reset(max(time.Until(sc.at.Add(publishAckWait)), 0))
		changed := elected.Changed()
		lost := false // not acknowledged (else: refused)
		select {
		case <-sc.stored.Ok():
			m.stored(sc.msg)
			continue
		case <-sc.stored.Err():
		case <-ctx.Done():
			select { // acknowledged all the same: on the record
			case <-sc.stored.Ok():
				m.stored(sc.msg)
			default:
			}
			continue // drain m.sent so the publisher never blocks
		default:
			lost = true
			if !elected.Since(sc.at) {
				select {
				case <-sc.stored.Ok():
					m.stored(sc.msg)
					continue
				case <-sc.stored.Err():
					lost = false
				case <-changed:
				case <-timer.C:
				case <-ctx.Done():
					select { // acknowledged all the same: on the record
					case <-sc.stored.Ok():
						m.stored(sc.msg)
					default:
					}
					continue
				}
			}
		}
		if lost {
			unacked++
			if time.Since(warned) > time.Second {
				m.pool.q.log.Warn("tasks not acknowledged before the stream's new leader or in time; publishing them again",
					"since_last_warning", unacked, "index", sc.msg.Header.Get(protocol.HeaderIndex), "timeout", publishAckWait)
				warned, unacked = time.Now(), 0
			}
		}
		// The others already refused, or published before the stream's
		// new leader and not acknowledged: a burst behind this one.
		burst := []*nats.Msg{sc.msg}
	gather:
		for len(burst) < maxBurst && held == nil {
			select {
			case next, ok := <-m.sent:
				if !ok {
					break gather
				}
				select {
				case <-next.stored.Ok():
					m.stored(next.msg)
					continue
				case <-next.stored.Err():
					burst = append(burst, next.msg)
					continue
				default:
				}
				if elected.Since(next.at) {
					burst = append(burst, next.msg)
					continue
				}
				held = &next
			default:
				break gather
			}
		}
		if err := m.resend(ctx, burst); err != nil {
			select {
			case m.fatal <- err:
			default:
			}
		}
	}
}

// stored logs, at debug level, that the stream acknowledged a chunk: the
// record of what the map was told is stored, against which a run's
// results can be checked (lost: acknowledged and never answered).
func (m *mapping) stored(msg *nats.Msg) {
	if log := m.pool.q.log; log.Enabled(context.Background(), slog.LevelDebug) {
		n := msg.Header.Get(protocol.HeaderChunk)
		if n == "" {
			n = "1"
		}
		log.Debug("task stored", "map", m.id, "index", msg.Header.Get(protocol.HeaderIndex), "inputs", n)
	}
}

// maxBurst is how many chunks confirm publishes again at once.
const maxBurst = 256

// publishAckWait bounds the wait for the stream's acknowledgement of a
// chunk published asynchronously.
const publishAckWait = 5 * time.Second

// resend publishes msgs again: the first synchronously (waiting for the
// stream's leader, for room in a full stream), then the others at once,
// each waited for and published again synchronously only should that
// fail.
func (m *mapping) resend(ctx context.Context, msgs []*nats.Msg) error {
	q := m.pool.q
	if err := q.publish(ctx, msgs[0]); err != nil {
		return fmt.Errorf("submit #%s: %w", msgs[0].Header.Get(protocol.HeaderIndex), err)
	}
	m.stored(msgs[0])
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, msg := range msgs[1:] {
		futures[i+1], _ = q.js.PublishMsgAsync(msg) // a failure: published synchronously below
	}
	wait, cancel := context.WithTimeout(ctx, publishAckWait)
	defer cancel()
	for i, msg := range msgs[1:] {
		if f := futures[i+1]; f != nil {
			select {
			case <-f.Ok():
				m.stored(msg)
				continue
			case <-f.Err():
			case <-wait.Done():
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
		}
		if err := q.publish(ctx, msg); err != nil {
			return fmt.Errorf("submit #%s: %w", msg.Header.Get(protocol.HeaderIndex), err)
		}
		m.stored(msg)
	}
	return nil
}

// chunkBytes is how large a chunk's inputs may grow: a quarter of the
// broker's max payload, leaving room for headers and, on the way back, for
// results larger than their inputs (an answer too large travels in parts).
func chunkBytes(maxPayload int64) int {
	if maxPayload <= 0 {
		maxPayload = 1 << 20
	}
	return int(maxPayload / 4)
}

// joinArray is the JSON array of items, each valid JSON already.
func joinArray(items []json.RawMessage) []byte {
	n := 2
	for _, it := range items {
		n += len(it) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it...)
	}
	return append(b, ']')
}
