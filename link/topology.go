package link

import (
	"cmp"
	"context"
	"fmt"
	"slices"
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
	tasks, err := ensureStream(ctx, js, jetstream.StreamConfig{
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
	cons, err := ensureConsumer(ctx, tasks, jetstream.ConsumerConfig{
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
	results, err := ensureStream(ctx, js, jetstream.StreamConfig{
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
	dead, err := ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        task.DeadStream,
		Description: "procq dead letters: messages that can never succeed, with the reason",
		Subjects:    []string{task.DeadPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		MaxAge:      DeadMaxAge,
	})
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", task.DeadStream, err)
	}
	runs, err := ensureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      task.RunsBucket,
		Description: "the current run of each queue",
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", task.RunsBucket, err)
	}
	presence, err := ensureKeyValue(ctx, js, jetstream.KeyValueConfig{
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

// ensureStream returns the stream, creating it, or updating it only where
// its configuration differs from cfg: every process declares the topology
// at start, and needless updates from many processes at once would churn
// the broker (and race with consumer creation inside nats-server).
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	if s, err := js.Stream(ctx, cfg.Name); err == nil && streamCurrent(s.CachedInfo().Config, cfg) {
		return s, nil
	}
	return js.CreateOrUpdateStream(ctx, cfg)
}

// streamCurrent reports whether have already has every field want sets.
func streamCurrent(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.Description == want.Description &&
		have.Retention == want.Retention && have.Storage == want.Storage && have.Discard == want.Discard &&
		(want.MaxMsgs == 0 || have.MaxMsgs == want.MaxMsgs) &&
		(want.MaxAge == 0 || have.MaxAge == want.MaxAge) &&
		(want.Duplicates == 0 || have.Duplicates == want.Duplicates)
}

// ensureConsumer is ensureStream for the queue's durable consumer.
func ensureConsumer(ctx context.Context, s jetstream.Stream, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	if c, err := s.Consumer(ctx, cfg.Durable); err == nil {
		have := c.CachedInfo().Config
		if have.FilterSubject == cfg.FilterSubject && have.AckPolicy == cfg.AckPolicy && have.AckWait == cfg.AckWait &&
			have.MaxDeliver == cfg.MaxDeliver && have.MaxAckPending == cfg.MaxAckPending && have.Description == cfg.Description {
			return c, nil
		}
	}
	return s.CreateOrUpdateConsumer(ctx, cfg)
}

// ensureKeyValue returns the bucket, creating it if it does not exist.
func ensureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	if kv, err := js.KeyValue(ctx, cfg.Bucket); err == nil {
		return kv, nil
	}
	return js.CreateOrUpdateKeyValue(ctx, cfg)
}
