package producer

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/procq/procq/link"
	"github.com/procq/procq/protocol"
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

// ErrBrokerLost is the cause of a map that stopped because its
// connection to the broker was closed for good: the broker was unreachable
// for longer than broker.connect_timeout, and nats.go gave up
// reconnecting. The error names the broker.
var ErrBrokerLost = link.ErrBrokerLost

// ErrResultsNotStored is the cause of a map that stopped because the
// broker kept failing to store its results (its store full or failing).
var ErrResultsNotStored = errors.New("the broker cannot store results")

// TaskError is the error a task returned for one input.
type TaskError struct {
	Index   int
	Kind    string
	Message string
	cause   error // ErrCancelled for a cancelled input
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("%s #%d: %s", e.Kind, e.Index, e.Message)
}

// ErrDeadline is the error of an input whose task was taken after its
// deadline (Deadline): it never ran, and it is dead-lettered.
var ErrDeadline = errors.New(protocol.DeadlineReason)

// Is makes errors.Is(err, ErrDeadline) hold for a task taken too late.
// With a cause (a cancelled input's ErrCancelled) it holds for that.
func (e *TaskError) Is(target error) bool {
	if e.cause != nil && target == e.cause {
		return true
	}
	return target == ErrDeadline && strings.HasPrefix(e.Message, protocol.DeadlineReason)
}

// IncompleteError says a map stopped before every input had its result.
type IncompleteError struct {
	// Unfinished lists the submitted inputs without a result, sorted.
	Unfinished []int
	// NotSubmitted is the index of the first input never submitted, or -1.
	// Map folds the inputs from there on into Unfinished.
	NotSubmitted int
	// Err is why the map stopped (a context error, or a broker failure).
	Err error
}

func (e *IncompleteError) Error() string {
	s := fmt.Sprintf("map stopped with %d inputs unfinished (%s)", len(e.Unfinished), formatRanges(e.Unfinished))
	if e.NotSubmitted >= 0 {
		s += fmt.Sprintf(", inputs from #%d on never submitted", e.NotSubmitted)
	}
	return s + ": " + e.Err.Error()
}

func (e *IncompleteError) Unwrap() error { return e.Err }

// errStopped marks a map the caller broke out of.
var errStopped = errors.New("map stopped by the caller")

// formatRanges renders sorted indexes compactly: "0-3, 7, 9-12".
func formatRanges(idx []int) string {
	if len(idx) == 0 {
		return "none"
	}
	var s []byte
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		if len(s) > 0 {
			s = append(s, ", "...)
		}
		s = strconv.AppendInt(s, int64(idx[i]), 10)
		if j > i {
			s = append(append(s, '-'), strconv.Itoa(idx[j])...)
		}
		i = j + 1
	}
	return string(s)
}
