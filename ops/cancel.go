package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/protocol"
	"github.com/procq/procq/schedule"
	"github.com/procq/procq/task"
)

// cancelWait bounds the wait for a map's producer to answer a cancel.
const cancelWait = 5 * time.Second

// CancelTask cancels the task with the given id, wherever it is: a
// delayed task (its id is one word) is removed before it fires; an input
// of a running map ("<map>.<index>") is cancelled by the map's producer,
// which alone knows whether it finished: queued, it never runs; running,
// its handler's context is cancelled. protocol.ErrNoTask when no delayed
// task or running map has that id, protocol.ErrFinished when the task
// has its result already, schedule.ErrFired when a delayed task fired
// already.
func CancelTask(ctx context.Context, js jetstream.JetStream, id string) error {
	if task.ValidName(id) == nil {
		err := schedule.CancelID(ctx, js, id)
		if errors.Is(err, schedule.ErrFired) {
			return fmt.Errorf("task %s: %w: no delayed task of that id waits (it fired already, or never was)", id, protocol.ErrNoTask)
		}
		return err
	}
	run, index, ok := protocol.SplitTaskID(id)
	if !ok || task.ValidName(run) != nil {
		return fmt.Errorf("task %q: %w: a task id is a delayed task's id or <map>.<index>", id, protocol.ErrNoTask)
	}
	req, _ := json.Marshal(protocol.CancelRequest{Index: index})
	ctx, cancel := context.WithTimeout(ctx, cancelWait)
	defer cancel()
	msg, err := js.Conn().RequestWithContext(ctx, protocol.CancelSubject(run), req)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("task %s: %w: no running map %s (it ended, or never was)", id, protocol.ErrNoTask, run)
	case err != nil:
		return fmt.Errorf("task %s: cancel: the map's producer did not answer: %w", id, err)
	}
	var reply protocol.CancelReply
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		return fmt.Errorf("task %s: cancel: bad answer from the map's producer: %w", id, err)
	}
	switch reply.Code {
	case "":
		if reply.Error != "" {
			return fmt.Errorf("task %s: cancel: %s", id, reply.Error)
		}
		return nil
	case protocol.CancelFinished:
		return &replyError{text: reply.Error, is: protocol.ErrFinished}
	default:
		return &replyError{text: reply.Error, is: protocol.ErrNoTask}
	}
}

// replyError is a producer's reason not to cancel, in its own words.
type replyError struct {
	text string
	is   error
}

func (e *replyError) Error() string { return e.text }
func (e *replyError) Unwrap() error { return e.is }
