package procq

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/procq/procq/msgq"
	"github.com/procq/procq/producer"
	"github.com/procq/procq/task"
)

// The typed forms of the pool's methods. Inputs of type A are encoded as
// JSON once each; results decode into R. They pair with task.Register on
// the consumer side, which takes the same A and returns the same R.

// Result is one input's outcome in a typed map.
type Result[R any] struct {
	// Index is the input's position, from 0.
	Index int
	// Value is the task's result; the zero R when Err is set.
	Value R
	// Err is a *producer.TaskError when the task failed, or the error of
	// decoding its result into R.
	Err error
}

// MapError is the error of a map in which some inputs failed while the
// rest succeeded: Failed has each failed input's error, in input order.
type MapError struct {
	Inputs int
	Failed []error // each a *producer.TaskError or a decoding error naming its index
}

func (e *MapError) Error() string {
	msgs := make([]string, 0, min(len(e.Failed), 3))
	for _, err := range e.Failed[:min(len(e.Failed), 3)] {
		msgs = append(msgs, err.Error())
	}
	more := ""
	if len(e.Failed) > 3 {
		more = fmt.Sprintf("; and %d more", len(e.Failed)-3)
	}
	return fmt.Sprintf("%d of %d inputs failed: %s%s", len(e.Failed), e.Inputs, strings.Join(msgs, "; "), more)
}

// Unwrap gives errors.Is and errors.As the inputs' errors.
func (e *MapError) Unwrap() []error { return e.Failed }

// Map runs kind over inputs and returns one result per input, in input
// order, like Python's Pool.map. When some inputs fail, the others'
// results are still there (the zero R for a failed one) and the error is a
// *MapError listing the failures; when the map cannot complete, it is the
// pool's *producer.IncompleteError.
func Map[A, R any](ctx context.Context, p *Pool, kind string, inputs []A) ([]R, error) {
	return mapWith[A, R](ctx, p, kind, inputs, nil)
}

// mapWith is Map that tells started the map's id as it starts.
func mapWith[A, R any](ctx context.Context, p *Pool, kind string, inputs []A, started func(id string)) ([]R, error) {
	rs, err := p.inner.MapWith(ctx, kind, producer.Values(slices.Values(inputs)), len(inputs), started)
	if err != nil {
		return nil, err
	}
	out := make([]R, len(rs))
	var failed []error
	for i, r := range rs {
		v, err := decode[R](r)
		if err != nil {
			failed = append(failed, err)
			continue
		}
		out[i] = v
	}
	if failed != nil {
		return out, &MapError{Inputs: len(inputs), Failed: failed}
	}
	return out, nil
}

// Starmap runs kind over inputs whose every element is the list of a
// task's arguments, like Python's Pool.starmap: the task receives a JSON
// array, which a typed handler takes as an array, a slice or a type of its
// own.
func Starmap[R any](ctx context.Context, p *Pool, kind string, inputs [][]any) ([]R, error) {
	return Map[[]any, R](ctx, p, kind, inputs)
}

// Imap yields results in input order while the map runs, like Python's
// Pool.imap; a final error, if the map could not complete, comes last.
// Breaking out of the loop cancels the map.
func Imap[A, R any](ctx context.Context, p *Pool, kind string, inputs iter.Seq[A]) iter.Seq2[Result[R], error] {
	return typedSeq[R](p.inner.Stream(ctx, kind, producer.Values(inputs), true))
}

// ImapUnordered yields results as they complete, like Python's
// Pool.imap_unordered.
func ImapUnordered[A, R any](ctx context.Context, p *Pool, kind string, inputs iter.Seq[A]) iter.Seq2[Result[R], error] {
	return typedSeq[R](p.inner.Stream(ctx, kind, producer.Values(inputs), false))
}

// Apply runs kind on one input and waits for its result, like Python's
// Pool.apply.
func Apply[A, R any](ctx context.Context, p *Pool, kind string, input A) (R, error) {
	h, err := ApplyAsync[A, R](ctx, p, kind, input)
	if err != nil {
		var zero R
		return zero, err
	}
	return h.Get(ctx)
}

// AsyncResult is the handle of one task submitted by ApplyAsync, like
// Python's AsyncResult.
type AsyncResult[R any] struct {
	h *producer.AsyncResult
}

// ApplyAsync submits kind on one input and returns at once, like Python's
// Pool.apply_async. With In or At the task is delayed: the broker holds
// it until then, and the handle's Cancel removes it before it fires. With
// Priority it runs at that level (a map of its own, like a delayed task).
// With Unique it returns once the task is stored, or an error errors.Is
// ErrDuplicate when another task of the queue holds the key.
func ApplyAsync[A, R any](ctx context.Context, p *Pool, kind string, input A, opts ...TaskOption) (*AsyncResult[R], error) {
	var h *producer.AsyncResult
	var err error
	o := taskOpts(opts)
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("apply %s: %w", kind, err)
	}
	if !o.Plain() || o.Priority != "" && o.Priority.Norm() != p.priority.Norm() {
		h, err = p.inner.ApplyWith(ctx, kind, input, o)
	} else {
		h, err = p.inner.ApplyAsync(ctx, kind, input)
	}
	if err != nil {
		return nil, err
	}
	return &AsyncResult[R]{h: h}, nil
}

// Get waits for the result, like AsyncResult.get; ctx's deadline is its
// timeout (the task goes on when it passes).
func (a *AsyncResult[R]) Get(ctx context.Context) (R, error) {
	var zero R
	raw, err := a.h.Get(ctx)
	if err != nil {
		return zero, err
	}
	var v R
	if err := task.Unmarshal(raw, &v); err != nil {
		return zero, fmt.Errorf("decode result: %w", err)
	}
	return v, nil
}

// Cancel cancels the task, like Future.cancel, and Get returns an error
// errors.Is ErrCancelled; nothing else of the pool is disturbed. A delayed
// task is removed before it fires, a queued one never runs, a running one
// has its handler's context cancelled. ErrFinished when it has its result
// already.
func (a *AsyncResult[R]) Cancel(ctx context.Context) error { return a.h.Cancel(ctx) }

// ID is the task's id (its Procq-Task-Id, what "broker task cancel"
// takes): a delayed task's own, else "<map>.<index>" once its map took
// it ("" before).
func (a *AsyncResult[R]) ID() string { return a.h.ID() }

// Wait waits until the result is there or ctx ends, like AsyncResult.wait.
func (a *AsyncResult[R]) Wait(ctx context.Context) error { return a.h.Wait(ctx) }

// Ready reports whether the result is there, like AsyncResult.ready.
func (a *AsyncResult[R]) Ready() bool { return a.h.Ready() }

// Successful reports whether the task completed without error, like
// AsyncResult.successful.
func (a *AsyncResult[R]) Successful() bool { return a.h.Successful() }

// MapResult is the handle of a map submitted by MapAsync.
type MapResult[R any] struct {
	done    chan struct{}
	out     []R
	err     error
	pool    *Pool
	started chan string // the map's id, once it runs
}

// Cancel cancels input index of the map: its result is an error
// errors.Is ErrCancelled (in the *MapError), and the others are not
// disturbed. A queued input never runs; a running one has its handler's
// context cancelled when it runs alone in its message (chunk size 1),
// else its chunk runs on and its result is dropped. ErrFinished when the
// input has its result already, ErrNoSuchTask when the map has no such
// input.
func (m *MapResult[R]) Cancel(ctx context.Context, index int) error {
	if m.Ready() {
		return fmt.Errorf("input #%d: %w: the map has ended", index, ErrFinished)
	}
	var id string
	select {
	case id = <-m.started:
		m.started <- id // for the next Cancel
	case <-m.done:
		return fmt.Errorf("input #%d: %w: the map has ended", index, ErrFinished)
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	err := m.pool.inner.CancelTask(ctx, id, index)
	if err != nil && m.Ready() {
		return fmt.Errorf("input #%d: %w: the map has ended", index, ErrFinished)
	}
	return err
}

// MapAsync starts Map and returns at once, like Python's Pool.map_async.
// When the map ends, exactly one of callback (with the results) or
// errorCallback (with Map's error) is called, once, if not nil; then the
// handle is ready.
func MapAsync[A, R any](ctx context.Context, p *Pool, kind string, inputs []A, callback func([]R), errorCallback func(error)) *MapResult[R] {
	m := &MapResult[R]{done: make(chan struct{}), pool: p, started: make(chan string, 1)}
	go func() {
		defer close(m.done)
		m.out, m.err = mapWith[A, R](ctx, p, kind, inputs, func(id string) { m.started <- id })
		switch {
		case m.err == nil && callback != nil:
			callback(m.out)
		case m.err != nil && errorCallback != nil:
			errorCallback(m.err)
		}
	}()
	return m
}

// Get waits for the map, like AsyncResult.get: its results, and Map's
// error.
func (m *MapResult[R]) Get(ctx context.Context) ([]R, error) {
	if err := m.Wait(ctx); err != nil {
		return nil, err
	}
	return m.out, m.err
}

// Wait waits until the map ends or ctx does.
func (m *MapResult[R]) Wait(ctx context.Context) error {
	select {
	case <-m.done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Ready reports whether the map has ended.
func (m *MapResult[R]) Ready() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// Successful reports whether the map ended with every input's result.
func (m *MapResult[R]) Successful() bool { return m.Ready() && m.err == nil }

func decode[R any](r producer.Result) (R, error) {
	if r.Err != nil {
		var zero R
		return zero, r.Err
	}
	if _, raw := any((*R)(nil)).(*json.RawMessage); raw {
		// As it came: valid JSON, no second decode and no copy. R is
		// json.RawMessage itself, so the conversion is the identity.
		return *(*R)(unsafe.Pointer(&r.Value)), nil
	}
	return decodeValue[R](r)
}

// decodeValue decodes r's value into a new R: apart from decode, whose
// raw path then allocates nothing.
func decodeValue[R any](r producer.Result) (R, error) {
	var v R
	if err := task.Unmarshal(r.Value, &v); err != nil {
		return v, fmt.Errorf("input #%d: decode result %.100s: %w", r.Index, r.Value, err)
	}
	return v, nil
}

func typedSeq[R any](raw iter.Seq2[producer.Result, error]) iter.Seq2[Result[R], error] {
	return func(yield func(Result[R], error) bool) {
		for r, err := range raw {
			if err != nil {
				yield(Result[R]{}, err)
				return
			}
			v, derr := decode[R](r)
			if !yield(Result[R]{Index: r.Index, Value: v, Err: derr}, nil) {
				return
			}
		}
	}
}

// Get takes the item at the head of q, decoded into T, waiting up to
// timeout (see msgq.Queue.Get); msgq.ErrEmpty when none came.
func Get[T any](ctx context.Context, q *msgq.Queue, timeout time.Duration) (T, error) {
	var v T
	err := q.GetInto(ctx, timeout, &v)
	return v, err
}
