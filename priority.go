package procq

import (
	"fmt"

	"github.com/procq/procq/protocol"
)

// Level is a task's priority: High, Default or Low. A consumer takes a
// higher level's task first whenever one is waiting on its queue (strict
// priority), however many lower ones it holds in its prefetch; tasks of
// one level run in the order they were put.
type Level = protocol.Priority

// The levels. The zero Level is Default.
const (
	High    Level = protocol.PriorityHigh
	Default Level = protocol.PriorityDefault
	Low     Level = protocol.PriorityLow
)

// ErrUnknownPriority: a Level that is none of High, Default and Low
// (errors.Is on the error of the call that was given it).
var ErrUnknownPriority = protocol.ErrUnknownPriority

// Priority puts a task (Pool.Submit, ApplyAsync) at level l. A task of
// another level than Default goes on the level's own subjects, each
// served by a durable consumer of its own (docs/wire-format.md). An
// unknown level fails the call with ErrUnknownPriority and puts nothing.
// For every task of a pool's maps, see MapPriority.
func Priority(l Level) TaskOption {
	return func(o *protocol.TaskOptions) { o.Priority = l }
}

// MapPriority puts every task of the pool's maps (Map, Imap, Starmap,
// MapAsync, Apply and ApplyAsync; not Submit's tasks) at level l
// (producer pool --priority); Priority on one ApplyAsync task overrides
// it. An unknown level fails Client.Pool with ErrUnknownPriority.
func MapPriority(l Level) PoolOption { return func(o *poolOptions) { o.priority = l.Zero() } }

// ParseLevel reads a level by its name: "high", "default" (or "") or
// "low", any case; anything else is an error errors.Is
// ErrUnknownPriority that names it.
func ParseLevel(s string) (Level, error) { return protocol.ParsePriority(s) }

// noPriority fails, naming the queue, when o asks a message queue item
// for a priority: a message queue is first in, first out.
func noPriority(o protocol.TaskOptions, queue string) error {
	if o.Priority.Zero() != "" {
		return fmt.Errorf("message queue %s: priority %q: a message queue has no priorities (first in, first out); "+
			"Priority applies to tasks", queue, string(o.Priority))
	}
	return nil
}
