package protocol

import (
	"time"

	"github.com/nats-io/nats.go"
)

// TaskOptions are what a producer may ask of one task or item beyond its
// kind and arguments: when it is due, by when it must start, how long it
// may run, whether it is unique. Each sets its header on the task's message (SetHeaders); a
// zero field asks for nothing.
type TaskOptions struct {
	// At delays the task until then (a message schedule in PROCQ_SCHED).
	At time.Time
	// Deadline: a task taken later is not run (HeaderDeadline).
	Deadline time.Time
	// Unique: the put is refused while another task of the queue holds
	// this key (HeaderUnique), for at most UniqueFor.
	Unique    string
	UniqueFor time.Duration
	// ID is the task's id (HeaderTaskID); empty, one is made where the
	// task needs one (a delayed or unique task).
	ID string
}

// Delayed reports whether the task is held by the broker until At.
func (o TaskOptions) Delayed() bool { return !o.At.IsZero() }

// Plain reports whether o asks for nothing: the task is an ordinary one.
func (o TaskOptions) Plain() bool { return o == TaskOptions{} }

// SetHeaders sets the headers o asks for on a task message.
func (o TaskOptions) SetHeaders(h nats.Header) {
	if !o.Deadline.IsZero() {
		h.Set(HeaderDeadline, o.Deadline.UTC().Format(time.RFC3339Nano))
	}
	if o.ID != "" {
		h.Set(HeaderTaskID, o.ID)
	}
	if o.Unique != "" {
		h.Set(HeaderUnique, o.Unique)
	}
}
