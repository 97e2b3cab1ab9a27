package protocol

import (
	"time"

	"github.com/nats-io/nats.go"
)

// TaskOptions are what a producer may ask of one task or item beyond its
// kind and arguments: when it is due, by when it must start, how long it
// may run, how urgent it is. Each sets its header on the task's message
// (SetHeaders) or, the priority, its subject; a zero field asks for
// nothing.
type TaskOptions struct {
	// At delays the task until then (a message schedule in PROCQ_SCHED).
	At time.Time
	// Deadline: a task taken later is not run (HeaderDeadline).
	Deadline time.Time
	// Priority is the task's level (LevelSubject); zero: the default.
	Priority Priority
}

// Validate fails, naming the value, on an option that can never be met.
func (o TaskOptions) Validate() error { return o.Priority.Validate() }

// Delayed reports whether the task is held by the broker until At.
func (o TaskOptions) Delayed() bool { return !o.At.IsZero() }

// Plain reports whether o asks for nothing: the task is an ordinary one.
func (o TaskOptions) Plain() bool {
	o.Priority = o.Priority.Zero()
	return o == TaskOptions{}
}

// SetHeaders sets the headers o asks for on a task message.
func (o TaskOptions) SetHeaders(h nats.Header) {
	if !o.Deadline.IsZero() {
		h.Set(HeaderDeadline, o.Deadline.UTC().Format(time.RFC3339Nano))
	}
}
