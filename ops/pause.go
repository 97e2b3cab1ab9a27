package ops

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// ErrNoQueue says a queue has no durable consumer: it was never declared.
var ErrNoQueue = errors.New("no such queue")

// Forever is how long a pause without an end lasts: until resumed.
const Forever = 100 * 365 * 24 * time.Hour

// PauseQueue pauses the named task queue until until: its durable
// consumers, one per priority (JetStream's consumer pause, nats-server
// 2.11+), deliver nothing, sentinels included, while its consumers stay
// connected and producers may still put. Past until, or on ResumeQueue,
// they take work again where they left off.
func PauseQueue(ctx context.Context, js jetstream.JetStream, queue string, until time.Time) error {
	if err := checkQueue(ctx, js, queue); err != nil {
		return err
	}
	// The default level last: status reads the queue's pause from it, so
	// a queue shows paused only once every level is.
	for _, p := range []protocol.Priority{protocol.PriorityHigh, protocol.PriorityLow, protocol.PriorityDefault} {
		_, err := js.PauseConsumer(ctx, protocol.TasksStream, protocol.LevelDurable(queue, p), until)
		if err != nil && !(p != protocol.PriorityDefault && errors.Is(err, jetstream.ErrConsumerNotFound)) {
			return fmt.Errorf("pause queue %s: %w", queue, err)
		}
	}
	return nil
}

// ResumeQueue ends a pause of the named queue at once, every priority's.
func ResumeQueue(ctx context.Context, js jetstream.JetStream, queue string) error {
	if err := checkQueue(ctx, js, queue); err != nil {
		return err
	}
	for _, p := range []protocol.Priority{protocol.PriorityHigh, protocol.PriorityLow, protocol.PriorityDefault} {
		_, err := js.ResumeConsumer(ctx, protocol.TasksStream, protocol.LevelDurable(queue, p))
		if err != nil && !(p != protocol.PriorityDefault && errors.Is(err, jetstream.ErrConsumerNotFound)) {
			return fmt.Errorf("resume queue %s: %w", queue, err)
		}
	}
	return nil
}

// checkQueue fails with ErrNoQueue unless the queue's durable exists.
func checkQueue(ctx context.Context, js jetstream.JetStream, queue string) error {
	if err := task.ValidName(queue); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	_, err := js.Consumer(ctx, protocol.TasksStream, protocol.DurableName(queue))
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("queue %s: %w", queue, ErrNoQueue)
	}
	return err
}
