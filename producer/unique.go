package producer

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/procq/procq/protocol"
	"github.com/procq/procq/schedule"
	"github.com/procq/procq/unique"
)

// Unique tasks: a task put with a unique key (TaskOptions.Unique) first
// claims the key in PROCQ_UNIQUE under its task id, then is published; a
// key another task holds refuses the put with a *unique.DuplicateError,
// and a publish that fails gives the key back.

// locks is the queue's view of PROCQ_UNIQUE, opened on first use.
func (q *TaskQueue) locks() *unique.Bucket {
	q.uniqueOnce.Do(func() {
		replicas := 1
		if q.topo != nil && q.topo.Tasks != nil {
			replicas = q.topo.Tasks.CachedInfo().Config.Replicas
		}
		q.unique = unique.NewBucket(q.js, replicas, q.log)
	})
	return q.unique
}

// claim takes o's unique key for the task msg (nil when o has none).
func (q *TaskQueue) claim(ctx context.Context, msg *nats.Msg, o protocol.TaskOptions) (*unique.Lock, error) {
	if o.Unique == "" {
		return nil, nil
	}
	return q.locks().Claim(ctx, msg, q.name, protocol.UniqueTaskKey(q.name, o.Unique), o.Unique, o.UniqueFor)
}

// ReleaseUnique gives back the unique key key of the queue when the task
// id still holds it (a delayed task cancelled); nothing for key "".
func (q *TaskQueue) ReleaseUnique(ctx context.Context, key, id string) error {
	if key == "" {
		return nil
	}
	return q.locks().Done(ctx, protocol.UniqueTaskKey(q.name, key), id)
}

// sendUnique publishes a map's one unique task (ApplyWith): it claims the
// key, publishes the task (delayed or not), waiting for the broker to
// store it, and hands the lock to onUnique; a publish that fails gives the
// key back.
func (m *mapping) sendUnique(ctx context.Context, msg *nats.Msg) error {
	q := m.pool.q
	var d *schedule.Delayed
	if m.opts.Delayed() {
		d = schedule.Delay(msg, m.opts.At) // its id first: the key's value
	}
	lock, err := q.claim(ctx, msg, m.opts)
	if err != nil {
		return err
	}
	if err := q.publish(ctx, msg); err != nil {
		return errors.Join(fmt.Errorf("submit unique task: %w", err), lock.Release(ctx))
	}
	m.pool.log.InfoContext(ctx, "unique task put", "map", m.id, "task", m.kind, "task_id", lock.ID,
		"unique_key", m.opts.Unique, "ttl", unique.TTL(m.opts.UniqueFor))
	if d != nil && m.onDelayed != nil {
		m.onDelayed(d)
	}
	if m.onUnique != nil {
		m.onUnique(lock)
	}
	return nil
}

// duplicateOr returns the *unique.DuplicateError err holds as it is, or
// err wrapped with what.
func duplicateOr(err error, what string) error {
	var de *unique.DuplicateError
	if errors.As(err, &de) {
		return de
	}
	return fmt.Errorf("%s: %w", what, err)
}
