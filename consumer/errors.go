package consumer

import (
	"errors"

	"github.com/procq/procq/link"
)

// ErrBrokerLost is returned by Run when the connection to the broker is
// closed for good (the broker was unreachable for longer than the client's
// reconnect budget); the error names the broker.
var ErrBrokerLost = link.ErrBrokerLost

// ErrRetired says a worker stopped after MaxTasks tasks (Worker.Retired):
// a spawned consumer exits protocol.ExitRetired then, and its producer
// starts a fresh one.
var ErrRetired = errors.New("retired after consumers.max_tasks tasks")

// ErrTimeLimit is returned by Run after a handler ran past its time limit
// and its grace and was abandoned: its task is dead-lettered, the rest
// settled, and the process should exit (a spawned consumer exits
// protocol.ExitTimeLimit, and its producer starts a fresh one), since
// only that stops a goroutine that ignores its context.
var ErrTimeLimit = errors.New("a task ran past its hard time limit")
