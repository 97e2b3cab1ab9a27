package protocol

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// TaskOptions are what a producer may ask of one task or item beyond its
// kind and arguments: when it is due, by when it must start, how long it
// may run, how urgent it is, whether it is unique. Each sets its header
// on the task's message (SetHeaders) or, the priority, its subject; a
// zero field asks for nothing.
type TaskOptions struct {
	// At delays the task until then (a message schedule in PROCQ_SCHED).
	At time.Time
	// Deadline: a task taken later is not run (HeaderDeadline).
	Deadline time.Time
	// Timeout is the task's own time limit (HeaderTimeout).
	Timeout time.Duration
	// Priority is the task's level (LevelSubject); zero: the default.
	Priority Priority
	// Unique: the put is refused while another task of the queue holds
	// this key (HeaderUnique), for at most UniqueFor.
	Unique    string
	UniqueFor time.Duration
	// Err is an option given a bad value: the put fails with it.
	Err error
}

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
	if o.Timeout > 0 {
		h.Set(HeaderTimeout, o.Timeout.String())
	}
	if o.Unique != "" {
		h.Set(HeaderUnique, o.Unique)
	}
}

// Validate checks o, naming the value that is wrong.
func (o TaskOptions) Validate() error {
	if o.Err != nil {
		return o.Err
	}
	if o.Timeout < 0 || o.Timeout > MaxTimeout {
		return fmt.Errorf("time limit must be positive and at most %v, got %v", MaxTimeout, o.Timeout)
	}
	if o.Unique != "" || o.UniqueFor != 0 {
		if err := CheckUnique(o.Unique, o.UniqueFor); err != nil {
			return err
		}
	}
	return o.Priority.Validate()
}
