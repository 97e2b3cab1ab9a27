package task

import (
	"context"
	"errors"
)

// RetryError is a handler's error that asks for the task to run again:
// the consumer hands the task back to the queue after an exponential
// backoff with jitter, up to the queue's max_deliver deliveries. The last
// failure is final: the input's error in a map, a dead letter in a queue.
type RetryError struct {
	Err error
}

func (e *RetryError) Error() string { return e.Err.Error() }
func (e *RetryError) Unwrap() error { return e.Err }

// Retry marks err as worth another try (see RetryError); nil stays nil.
//
//	if err := db.Ping(ctx); err != nil {
//		return 0, task.Retry(err) // the database may be back in a moment
//	}
func Retry(err error) error {
	if err == nil {
		return nil
	}
	return &RetryError{Err: err}
}

// IsRetry reports whether err asks for another try.
func IsRetry(err error) bool {
	var r *RetryError
	return errors.As(err, &r)
}

type attemptKey struct{}

// WithAttempt returns ctx carrying a task's delivery attempt; the consumer
// gives it to every handler.
func WithAttempt(ctx context.Context, attempt int) context.Context {
	return context.WithValue(ctx, attemptKey{}, attempt)
}

// Attempt is the delivery attempt of the task a handler runs, from 1; 0
// outside a task.
func Attempt(ctx context.Context) int {
	n, _ := ctx.Value(attemptKey{}).(int)
	return n
}
