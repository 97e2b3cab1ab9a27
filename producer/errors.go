package producer

import (
	"errors"
	"fmt"
	"time"
)

// FullError says a put found the queue full (queue.max_messages) for
// longer than the queue's PutTimeout.
type FullError struct {
	Queue  string
	Waited time.Duration
}

func (e *FullError) Error() string {
	return fmt.Sprintf("queue %s is full (queue.max_messages): no room within %v (queue.put_timeout)", e.Queue, e.Waited)
}

// ErrNoConsumers is the cause of a map that stopped because no consumer
// was left to do its work.
var ErrNoConsumers = errors.New("no live consumer")

// ErrResultsNotStored is the cause of a map that stopped because the
// broker kept failing to store its results (its store full or failing).
var ErrResultsNotStored = errors.New("the broker cannot store results")
