package broker

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/task"
)

// QueueConfig describes one work queue.
type QueueConfig struct {
	// Name of the queue, one subject token. Required.
	Name string
	// AckWait is the task lease. Defaults to 30s.
	AckWait time.Duration
	// MaxAckPending caps the tasks in flight across all consumers. Defaults
	// to 1000.
	MaxAckPending int
	// MaxMessages caps the task stream; when full it rejects new work
	// (DiscardNew) instead of dropping queued work. Defaults to 1000000.
	MaxMessages int64
	// ResultsMaxAge is how long an unread result is kept. Defaults to 1h.
	ResultsMaxAge time.Duration
}

func (c QueueConfig) withDefaults() QueueConfig {
	c.AckWait = cmp.Or(c.AckWait, 30*time.Second)
	c.MaxAckPending = cmp.Or(c.MaxAckPending, 1000)
	c.MaxMessages = cmp.Or(c.MaxMessages, 1_000_000)
	c.ResultsMaxAge = cmp.Or(c.ResultsMaxAge, time.Hour)
	return c
}

// Topology is the set of JetStream objects a queue needs.
type Topology struct {
	Tasks    jetstream.Stream
	Consumer jetstream.Consumer
	Results  jetstream.Stream
	Dead     jetstream.Stream
	Runs     jetstream.KeyValue
	// Presence holds a key per live consumer process (PresenceTTL).
	Presence jetstream.KeyValue
}

// PresenceTTL is how long a consumer's presence key outlives its last
// refresh; a live consumer refreshes it every PresenceTTL/4.
const PresenceTTL = 8 * time.Second

// DeadMaxAge is how long dead letters are kept.
const DeadMaxAge = 7 * 24 * time.Hour

// EnsureQueue creates or updates the streams, the queue's shared durable
// pull consumer and the runs bucket. Producers and consumers both call it,
// so either may start first.
func EnsureQueue(ctx context.Context, js jetstream.JetStream, cfg QueueConfig) (*Topology, error) {
	cfg = cfg.withDefaults()
	if err := task.ValidName(cfg.Name); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	tasks, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        task.TasksStream,
		Description: "procq work queues",
		Subjects:    []string{task.TasksPrefix + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardNew,
		MaxMsgs:     cfg.MaxMessages,
	})
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", task.TasksStream, err)
	}
	cons, err := tasks.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       task.DurableName(cfg.Name),
		Description:   "shared by every consumer of queue " + cfg.Name,
		FilterSubject: task.QueueFilter(cfg.Name),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		// The try limit is enforced by the consumer from the delivery count,
		// because a sentinel that must wait for unfinished work is handed
		// back with a delay, and that counts as a delivery too.
		MaxDeliver:    -1,
		MaxAckPending: cfg.MaxAckPending,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", task.DurableName(cfg.Name), err)
	}
	results, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        task.ResultsStream,
		Description: "procq task results, read by their producer and then removed",
		Subjects:    []string{task.ResultsPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		MaxAge:      cfg.ResultsMaxAge,
		// The de-duplication window drops a redelivered task's second
		// result (same Nats-Msg-Id); the producer also keeps only the first.
		Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", task.ResultsStream, err)
	}
	dead, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        task.DeadStream,
		Description: "procq dead letters: messages that can never succeed, with the reason",
		Subjects:    []string{task.DeadPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		MaxAge:      DeadMaxAge,
	})
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", task.DeadStream, err)
	}
	runs, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      task.RunsBucket,
		Description: "the current run of each queue",
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", task.RunsBucket, err)
	}
	presence, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      task.ConsumersBucket,
		Description: "live consumer processes, one key each, gone when not refreshed",
		Storage:     jetstream.MemoryStorage,
		TTL:         PresenceTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", task.ConsumersBucket, err)
	}
	return &Topology{Tasks: tasks, Consumer: cons, Results: results, Dead: dead, Runs: runs, Presence: presence}, nil
}
