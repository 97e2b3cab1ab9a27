package consumer

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// Config configures a Worker.
type Config struct {
	// Name identifies the consumer in output, logs and results. Required.
	Name string
	// Concurrency is how many tasks the worker runs at once. Defaults to 1.
	Concurrency int
	// Prefetch pins how many messages the worker holds at once, running or
	// waiting for a slot; it is raised to Concurrency. 0 (the default) is
	// adaptive: the worker holds about 15ms of work ahead per slot,
	// measured from recent task durations, between Concurrency (long
	// tasks, which then spread over consumers) and MaxPrefetch (tiny
	// tasks, which then cost one pull per hundreds).
	Prefetch int
	// MaxPrefetch caps adaptive prefetch; it is also kept within the
	// queue's max ack pending. Defaults to 256.
	MaxPrefetch int
	// MaxDeliver is the try limit: a task delivered more often is
	// dead-lettered without running. Defaults to
	// protocol.DefaultMaxDeliver.
	MaxDeliver int
	// Init, when set, runs once in Run before the first pull, like the
	// initializer of Python's Pool; when it fails, Run returns its error
	// and takes no task. Defaults to nil.
	Init func(ctx context.Context) error
	// MaxTasks, when above 0, retires the worker after that many task
	// messages (sentinels not counted), like Python's maxtasksperchild:
	// it takes no more, finishes those it holds, and Run returns with
	// Retired true. Defaults to 0, unlimited.
	MaxTasks int
	// RetryBackoff is the first delay before a task whose handler asked
	// for another try (task.Retry) runs again; it doubles with each
	// delivery up to RetryBackoffMax, and half of it is random (jitter).
	// Default to 1s and 1m.
	RetryBackoff    time.Duration
	RetryBackoffMax time.Duration
	// TaskTimeout is the time limit of a task that names none of its own
	// (Procq-Timeout): its handler's context is cancelled then (soft), and
	// a handler that has not returned HardTimeoutGrace later is abandoned
	// (hard): its task is dead-lettered "time limit exceeded after ...",
	// and Run returns ErrTimeLimit once the rest is settled, since only
	// the process's exit stops a goroutine that ignores its context.
	// Defaults to 0: none.
	TaskTimeout time.Duration
	// HardTimeoutGrace is how long a handler may run on after its time
	// limit. Defaults to 5s.
	HardTimeoutGrace time.Duration
	// SentinelRetry is how long a sentinel is handed back for while the queue
	// still holds unfinished work. Defaults to 500ms.
	SentinelRetry time.Duration
	// FetchWait is the expiry of one pull request, at least 1s; a stopping
	// worker waits at most this long for its last pull. Defaults to 2s.
	FetchWait time.Duration
	// PriorityCheck is how often a worker busy with tasks of one priority
	// looks again at a higher (or, having run out, a lower) priority it
	// found empty: the most a higher-priority task waits to be seen, and
	// the cost of priorities to work that uses none (one pull request per
	// PriorityCheck). Defaults to 10ms.
	PriorityCheck time.Duration
	// StoreTimeout is how long the worker keeps a computed answer that the
	// broker does not store (the results stream refusing writes, or
	// electing a leader) and stores it again, backing off, while it keeps
	// its task's lease: a store that fails is not the task's fault and
	// uses none of its tries. It counts from the first of a run of failed
	// stores; once it has passed, a task whose answer is still not stored
	// is dead-lettered with "answer not stored within ...", which fails its
	// inputs in the map. Defaults to protocol.DefaultPutTimeout (the
	// consumer executable's is queue.put_timeout).
	StoreTimeout time.Duration
	// StopTimeout is how long in-flight tasks may run on after the context
	// is cancelled before their own context is cancelled. Defaults to 10s.
	StopTimeout time.Duration
	// Run is the run the worker was started for: a producer that spawns a
	// consumer tells it, so that it takes that run's sentinel however late
	// it starts. Empty for a consumer started by hand. Defaults to "".
	Run string
	// Holds, when set, receives a line for each message the worker takes
	// ("+<ack subject>") and settles ("-<ack subject>"): a spawned
	// consumer's report to its producer, which hands a dead child's
	// messages back at once. Defaults to nil.
	Holds io.Writer
	// Events, when set, hears every task's start and end and every dead
	// letter (WorkerMetrics turns them into metrics). Defaults to nil.
	Events Events
	// Labelled, when set, is called as an input of a task its producer
	// labelled (the Procq-Label header: the Process demo's) starts to run,
	// and the function it returns as that input ends. Defaults to nil.
	Labelled func(label string) (done func(result json.RawMessage, err error))
	// Out receives the demo's lines, e.g. "Consumer C-1: Received
	// sentinel, exiting.". Defaults to io.Discard.
	Out io.Writer
}

// DefaultPriorityCheck is Config.PriorityCheck's default.
const DefaultPriorityCheck = 10 * time.Millisecond

func (c Config) withDefaults() Config {
	c.Concurrency = cmp.Or(c.Concurrency, 1)
	c.MaxDeliver = cmp.Or(c.MaxDeliver, protocol.DefaultMaxDeliver)
	c.RetryBackoff = cmp.Or(c.RetryBackoff, protocol.DefaultRetryBackoff)
	c.RetryBackoffMax = max(cmp.Or(c.RetryBackoffMax, protocol.DefaultRetryBackoffMax), c.RetryBackoff)
	c.SentinelRetry = cmp.Or(c.SentinelRetry, 500*time.Millisecond)
	c.HardTimeoutGrace = cmp.Or(c.HardTimeoutGrace, DefaultHardTimeoutGrace)
	c.FetchWait = max(cmp.Or(c.FetchWait, 2*time.Second), time.Second)
	c.StopTimeout = cmp.Or(c.StopTimeout, 10*time.Second)
	c.StoreTimeout = cmp.Or(c.StoreTimeout, protocol.DefaultPutTimeout)
	c.PriorityCheck = cmp.Or(c.PriorityCheck, DefaultPriorityCheck)
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Events == nil {
		c.Events = noEvents{}
	}
	return c
}

// retryDelay is the backoff before delivery attempt+1 of a task that asked
// for a retry: RetryBackoff doubled per delivery so far, at most
// RetryBackoffMax, of which the upper half is random ("equal jitter"), so
// that tasks failing together do not come back together.
func (c Config) retryDelay(attempt uint64) time.Duration {
	d := c.RetryBackoffMax
	if attempt <= 32 {
		d = min(c.RetryBackoff<<(attempt-1), c.RetryBackoffMax)
		if d <= 0 { // overflow
			d = c.RetryBackoffMax
		}
	}
	return d/2 + rand.N(d/2+1)
}

func (c Config) validate() error {
	if err := task.ValidName(c.Name); err != nil {
		return fmt.Errorf("consumer name: %w", err)
	}
	if c.MaxTasks < 0 {
		return fmt.Errorf("consumer: max tasks must not be negative")
	}
	if c.TaskTimeout < 0 || c.HardTimeoutGrace < 0 || c.StoreTimeout < 0 {
		return fmt.Errorf("consumer: task timeout, hard timeout grace and store timeout must not be negative")
	}
	if c.Concurrency < 1 || c.MaxDeliver < 1 {
		return fmt.Errorf("consumer: concurrency and max deliver must be at least 1")
	}
	return nil
}
