package procq

import (
	"context"
	"time"

	"github.com/procq/procq/schedule"

	"github.com/procq/procq/protocol"
	"github.com/procq/procq/unique"
)

// Unique tasks. A task or item put with Unique(key, ttl) holds key on its
// queue from the put until ttl has passed or the task has succeeded or
// been cancelled (for a message-queue item: a getter took it), whichever
// comes first, like asynq's Unique. Another put of the same key on the same queue meanwhile
// is refused with a *DuplicateError naming the task that holds it. The
// ttl counts from the put, whether the task still waits, runs or is done:
// give a ttl longer than a task waits and runs, or a duplicate is
// accepted once it passes. docs/task-control.md has the limits.

// ErrDuplicate: the put was refused because another task holds its
// unique key (errors.Is); the error is a *DuplicateError.
var ErrDuplicate = unique.ErrDuplicate

// DuplicateError names the refused put's key and queue, and FirstID, the
// id of the task that holds the key (its Task.ID or AsyncResult.ID).
type DuplicateError = unique.DuplicateError

// ErrBadUnique: a unique key that is empty, over 255 bytes, or holds '*',
// '>', white space or a control character, or a ttl that is not positive
// (errors.Is); nothing is put.
var ErrBadUnique = unique.ErrBadKey

// Unique makes a task or item unique on its queue by key for ttl (rounded
// up to whole seconds): Put, Submit and ApplyAsync return an error
// errors.Is ErrDuplicate while another task of the queue holds key.
func Unique(key string, ttl time.Duration) TaskOption {
	return func(o *protocol.TaskOptions) { o.Unique, o.UniqueFor = key, ttl }
}

// handle is the Task of a task put delayed (d), unique (lock) or both;
// cancel removes a delayed one, which then holds its key no longer.
func handle(d *schedule.Delayed, lock *unique.Lock, cancel func(context.Context) error) *Task {
	t := &Task{d: d}
	if lock != nil {
		t.id = lock.ID
	}
	if d != nil {
		t.cancel = func(ctx context.Context) error {
			if err := cancel(ctx); err != nil {
				return err
			}
			return lock.Release(ctx)
		}
	}
	return t
}
