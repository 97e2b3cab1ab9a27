package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/protocol"
	"github.com/procq/procq/schedule"
	"github.com/procq/procq/unique"
)

// Delayed tasks: a task put with a time is a one-off message schedule in
// PROCQ_SCHED on the run's subjects (so the run's sentinels wait for it),
// fired by the broker into the queue when due.

// ErrCancelled is the result of a delayed task cancelled before it fired.
var ErrCancelled = errors.New("task cancelled")

// ErrNotDelayed says Cancel was asked of a task that was not delayed: it
// was queued at once.
var ErrNotDelayed = errors.New("not a delayed task: only a delayed task can be cancelled")

// PutWith is Put of a task with options: due at o.At (zero: now; then
// no handle), with a deadline, at o.Priority's level, unique (o.Unique:
// a *unique.DuplicateError when another task holds the key), and the rest
// of o's headers. An unknown priority is an error errors.Is
// protocol.ErrUnknownPriority, and nothing is put.
func (q *TaskQueue) PutWith(ctx context.Context, run string, index int, kind string, args any, o protocol.TaskOptions) (*schedule.Delayed, error) {
	at := o.At
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("put %s #%d: %w", kind, index, err)
	}
	if o.Delayed() && q.topo.Sched == nil {
		return nil, schedule.Supported(q.js)
	}
	body, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("put %s #%d: %w", kind, index, err)
	}
	msg := q.taskMsg(run, index, kind, body)
	msg.Subject = protocol.LevelSubject(q.name, run, o.Priority)
	o.SetHeaders(msg.Header)
	var d *schedule.Delayed
	if o.Delayed() {
		d = schedule.Delay(msg, at) // its id first: the unique key's value
	}
	lock, err := q.claim(ctx, msg, o)
	if err != nil {
		return nil, duplicateOr(err, fmt.Sprintf("put %s #%d", kind, index))
	}
	if !o.Delayed() {
		if err := q.publish(ctx, msg); err != nil {
			return nil, errors.Join(fmt.Errorf("put %s #%d: %w", kind, index, err), lock.Release(ctx))
		}
		return nil, nil
	}
	if err := q.publish(ctx, msg); err != nil {
		return nil, errors.Join(fmt.Errorf("put %s #%d at %s: %w", kind, index, at.Format(time.RFC3339), err), lock.Release(ctx))
	}
	q.log.InfoContext(ctx, "delayed task put", "task", kind, "run", run, "index", index, "task_id", d.ID, "due", d.Due)
	return d, nil
}

// Cancel removes the delayed task d (from PutWith) before it fires.
func (q *TaskQueue) Cancel(ctx context.Context, d *schedule.Delayed) error {
	return d.Cancel(ctx, q.js)
}

// ApplyWith is ApplyAsync of a task with options o: due at o.At (zero:
// now), with a deadline (zero: none), at o.Priority's level, unique
// (o.Unique) and the rest of o's headers. A delayed task is held by the
// broker until then:
// ApplyWith returns once the broker has stored it, and the handle's Cancel
// removes it before it fires (the result is then ErrCancelled). A task
// taken after its deadline is not run, and Get returns an error errors.Is
// ErrDeadline. A unique task is stored before ApplyWith returns; when
// another task holds its key, ApplyWith returns a *unique.DuplicateError.
//
// Such a task is a map of its own (its results consumer and lease), not
// part of the kind's session, so a task due in an hour holds none of the
// session's window.
func (p *Pool) ApplyWith(ctx context.Context, kind string, args any, o protocol.TaskOptions) (*AsyncResult, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("apply %s: %w", kind, err)
	}
	if o.Delayed() && p.q.topo.Sched == nil {
		return nil, schedule.Supported(p.q.js)
	}
	if o.Unique != "" {
		if err := unique.Check(o.Unique, o.UniqueFor); err != nil {
			return nil, err
		}
	}
	r := p.newResult()
	scheduled := make(chan *schedule.Delayed, 1)
	claimed := make(chan *unique.Lock, 1)
	mctx, stop := context.WithCancelCause(context.WithoutCancel(ctx))
	single := func(context.Context) Inputs {
		return Values(func(yield func(any) bool) { yield(args) })
	}
	results := p.streamFor(mctx, kind, single, 1, false, func(m *mapping) {
		m.opts = o
		if o.Priority == "" {
			m.opts.Priority = p.cfg.Priority.Zero() // the pool's
		}
		m.onDelayed = func(d *schedule.Delayed) { scheduled <- d }
		m.onUnique = func(l *unique.Lock) { claimed <- l }
		r.place(m.id, 0)
	})
	go func() {
		defer stop(nil)
		res := Result{Err: errors.New("map ended without a result")}
		for rr, err := range results {
			if err != nil {
				res = Result{Err: err}
				if errors.Is(context.Cause(mctx), ErrCancelled) {
					res.Err = ErrCancelled
				}
				break
			}
			rr.Index = 0
			if te, ok := rr.Err.(*TaskError); ok {
				te.Index = 0
			}
			res = rr
		}
		r.set(res)
	}()
	if !o.Delayed() && o.Unique == "" {
		return r, nil // not delayed, not unique: nothing to wait for, nothing to cancel
	}
	// Stored (and its key held), or refused.
	var lock *unique.Lock
	if o.Unique != "" {
		select {
		case lock = <-claimed:
		case <-r.done:
			return nil, duplicateOr(r.res.Err, "submit unique task")
		case <-ctx.Done():
			stop(context.Cause(ctx))
			return nil, context.Cause(ctx)
		}
		if !o.Delayed() {
			return r, nil
		}
	}
	select {
	case d := <-scheduled:
		r.delayed = d
		r.cancel = func(ctx context.Context) error {
			if err := schedule.Cancel(ctx, p.q.js, d.Subject); err != nil {
				return err
			}
			stop(ErrCancelled)
			return lock.Release(ctx) // a cancelled task holds its unique key no longer
		}
		return r, nil
	case <-r.done:
		return nil, r.res.Err
	case <-ctx.Done():
		stop(context.Cause(ctx))
		return nil, context.Cause(ctx)
	}
}

// Delayed is the delayed task's handle (its id and due time); nil for a
// task that was not delayed.
func (r *AsyncResult) Delayed() *schedule.Delayed { return r.delayed }

// sendDelayed publishes a delayed map's one task as a message schedule,
// waiting for the broker to store it, and hands the handle to onDelayed.
func (m *mapping) sendDelayed(ctx context.Context, msg *nats.Msg) error {
	d := schedule.Delay(msg, m.opts.At)
	if err := m.pool.q.publish(ctx, msg); err != nil {
		return fmt.Errorf("submit delayed task: %w", err)
	}
	m.pool.log.InfoContext(ctx, "delayed task put", "map", m.id, "task", m.kind, "task_id", d.ID, "due", d.Due)
	if m.onDelayed != nil {
		m.onDelayed(d)
	}
	return nil
}

// waitStart holds the map's first task back until the pool's StartAt,
// the map's lease and consumer watch running meanwhile.
func (m *mapping) waitStart(ctx context.Context) error {
	wait := time.Until(m.pool.cfg.StartAt)
	if wait <= 0 {
		return nil
	}
	m.pool.log.InfoContext(ctx, "map waits for its start time", "map", m.id, "start", m.pool.cfg.StartAt.UTC(),
		"waiting_for", "the start time (--in/--at)")
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// purgeDelayed removes the delayed tasks of a map's subject that have not
// fired, and its firings not yet in the queue, so a map that stopped early
// leaves nothing to fire later.
func (q *TaskQueue) purgeDelayed(ctx context.Context, subject string) error {
	if q.topo.Sched == nil {
		return nil
	}
	return errors.Join(
		q.topo.Sched.Purge(ctx, jetstream.WithPurgeSubject(protocol.DelayedSubject(subject, ">"))),
		q.topo.Sched.Purge(ctx, jetstream.WithPurgeSubject(protocol.FireSubject(subject))))
}
