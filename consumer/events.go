package consumer

import "time"

// Ending is how a task that ran ended, as Events hears it (the
// "outcome" label of its metrics).
type Ending string

// The outcomes of a task that ran.
const (
	// Succeeded: every input has its result.
	Succeeded Ending = "succeeded"
	// Failed: an input failed for good; the task is answered with the
	// error (in a map) and dead-lettered.
	Failed Ending = "failed"
	// Retried: an input asked for another try (task.Retry) and tries are
	// left; the task comes back after a backoff.
	Retried Ending = "retried"
)

// Events hears what a worker does with its tasks: package ops counts them
// as Prometheus metrics. Its methods are called from the worker's
// goroutines: they must be quick and safe for concurrent use.
type Events interface {
	// TaskStarted: a task message of kind is about to run.
	TaskStarted(kind string)
	// TaskFinished: it ran for d and ended so.
	TaskFinished(kind string, outcome Ending, d time.Duration)
	// DeadLettered: a message of kind (empty when it had none) is stored
	// as a dead letter: failed for good, or one that could never run.
	DeadLettered(kind string)
	// TaskFired: a task fired by a schedule (schedule: its name, empty
	// for a delayed task) is taken for the first time, late after its due
	// time (negative: it has none).
	TaskFired(schedule string, late time.Duration)
}

type noEvents struct{}

func (noEvents) TaskStarted(string)                         {}
func (noEvents) TaskFinished(string, Ending, time.Duration) {}
func (noEvents) DeadLettered(string)                        {}
func (noEvents) TaskFired(string, time.Duration)            {}

// InHand is how many messages the worker holds now: running, or pulled
// and waiting for a slot.
func (w *Worker) InHand() int { return int(w.window.held.Load()) }
