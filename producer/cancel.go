package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/procq/procq/protocol"
)

// Cancelling one task of a map. The map's producer decides: an input
// that has its result is finished; any other is cancelled. Its result
// becomes ErrCancelled at once, whatever answer comes later, and a cancel
// mark (CancelBucket) tells the queue's consumers not to run it, or to
// cancel its handler's context if one runs it now.

// Errors of Cancel.
var (
	// ErrFinished: the task has its result already.
	ErrFinished = protocol.ErrFinished
	// ErrNoTask: no running map has a task of that id.
	ErrNoTask = protocol.ErrNoTask
)

// CancelTask cancels input index of the map with id mapID, a map of this
// pool that runs now. ErrFinished when that input has its result,
// ErrNoTask when no such map runs here or it has no such input.
func (p *Pool) CancelTask(ctx context.Context, mapID string, index int) error {
	v, ok := p.maps.Load(mapID)
	if !ok {
		return fmt.Errorf("task %s: %w (no map %s runs in this producer)", protocol.TaskID(mapID, index), ErrNoTask, mapID)
	}
	return v.(*mapping).cancel(ctx, index)
}

// cancel cancels input index of the map (CancelTask).
func (m *mapping) cancel(ctx context.Context, index int) error {
	id := protocol.TaskID(m.id, index)
	m.mu.Lock()
	total := m.progress.total.Load() // -1 while inputs are still read
	submitted := int(m.progress.submitted.Load())
	start, _, inFlight := m.chunkOf(index)
	switch {
	case index < 0 || total >= 0 && int64(index) >= total:
		m.mu.Unlock()
		return fmt.Errorf("task %s: %w (the map has %d inputs)", id, ErrNoTask, total)
	case m.cancelled[index]:
		m.mu.Unlock()
		return nil
	case inFlight && m.parts[start] != nil && m.parts[start].have[index-start]:
		m.mu.Unlock()
		return fmt.Errorf("task %s: %w", id, ErrFinished)
	case !inFlight && index < submitted:
		m.mu.Unlock()
		return fmt.Errorf("task %s: %w", id, ErrFinished)
	}
	if m.cancelled == nil {
		m.cancelled = map[int]bool{}
	}
	m.cancelled[index] = true
	if inFlight {
		m.cancelQ = append(m.cancelQ, index)
	}
	m.mu.Unlock()
	if err := m.pool.q.MarkCancelled(ctx, id); err != nil {
		// The result is ErrCancelled all the same; a consumer may still
		// run the task, and its answer is dropped.
		m.pool.log.WarnContext(ctx, "cancel mark not stored: the task may still run", "task_id", id, "error", err)
	}
	if inFlight {
		// Its result now, not when a consumer gets to it. Never waiting:
		// the caller may be the map's own results loop, or the handler of
		// a cancel request.
		select {
		case m.cancels <- struct{}{}:
		default: // a wake is pending already
		}
	}
	return nil
}

// MarkCancelled marks task id of the queue cancelled: no consumer runs
// it, and one running it cancels its handler's context. For a task
// answered to nobody (Submit), whose producer cannot know whether it
// finished.
func (q *TaskQueue) MarkCancelled(ctx context.Context, id string) error {
	if _, err := q.topo.Cancel.Put(ctx, protocol.CancelKey(q.name, id), []byte(protocol.CancelledClaim)); err != nil {
		return fmt.Errorf("cancel %s: %w", id, err)
	}
	q.log.InfoContext(ctx, "task marked cancelled", "task_id", id)
	if q.topo.Counts != nil {
		if err := protocol.Increment(ctx, q.js, protocol.CountCancelled, q.name); err != nil {
			q.log.WarnContext(ctx, "counter not stored", "counter", protocol.CountCancelled, "error", err)
		}
	}
	return nil
}

// cancelledResult is the result of a cancelled input.
func (m *mapping) cancelledResult(index int) Result {
	return Result{Index: index, Err: &TaskError{Index: index, Kind: m.kind, Message: protocol.CancelledText, cause: ErrCancelled}}
}

// answerCancels answers the cancel requests for the map's tasks
// (protocol.CancelRequest on protocol.CancelSubject) until the returned
// function is called.
func (m *mapping) answerCancels(ctx context.Context) (stop func(), err error) {
	return m.pool.q.answerCancels(ctx, m.id, m.cancel)
}

// AnswerCancels answers the cancel requests for the tasks of run put
// with index (Submit's, answered to nobody): one submitted is marked
// cancelled (its producer cannot know whether it finished), another is
// no such task. Until the returned function is called.
func (q *TaskQueue) AnswerCancels(ctx context.Context, run string, submitted func(index int) bool) (stop func(), err error) {
	return q.answerCancels(ctx, run, func(ctx context.Context, index int) error {
		id := protocol.TaskID(run, index)
		if !submitted(index) {
			return fmt.Errorf("task %s: %w", id, ErrNoTask)
		}
		return q.MarkCancelled(ctx, id)
	})
}

// answerCancels answers the cancel requests on run's subject with cancel.
func (q *TaskQueue) answerCancels(ctx context.Context, run string, cancel func(context.Context, int) error) (stop func(), err error) {
	sub, err := q.js.Conn().Subscribe(protocol.CancelSubject(run), func(msg *nats.Msg) {
		var req protocol.CancelRequest
		reply := protocol.CancelReply{Queue: q.name}
		if err := json.Unmarshal(msg.Data, &req); err != nil {
			reply.Error = "bad cancel request: " + err.Error()
		} else if err := cancel(ctx, req.Index); err != nil {
			reply.Error = err.Error()
			switch {
			case errors.Is(err, ErrFinished):
				reply.Code = protocol.CancelFinished
			case errors.Is(err, ErrNoTask):
				reply.Code = protocol.CancelNoTask
			}
		}
		data, _ := json.Marshal(reply)
		_ = msg.Respond(data)
	})
	if err != nil {
		return nil, err
	}
	return func() { _ = sub.Unsubscribe() }, nil
}
