package protocol

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/procq/procq/link"
	"github.com/procq/procq/task"
)

// QueueConfig describes one work queue.
type QueueConfig struct {
	// Name of the queue, one subject token. Required.
	Name string
	// AckWait is the task lease. Defaults to DefaultAckWait.
	AckWait time.Duration
	// MaxAckPending caps the tasks in flight across all consumers. Defaults
	// to DefaultMaxAckPending.
	MaxAckPending int
	// MaxMessages caps the task stream; when full it rejects new work
	// (DiscardNew) instead of dropping queued work. Defaults to DefaultMaxMessages.
	MaxMessages int64
	// ResultsMaxAge is how long an unread result is kept. Defaults to DefaultResultsMaxAge.
	ResultsMaxAge time.Duration
	// Replicas is the replica count of every stream and bucket; at most
	// the cluster's size. An existing topology with another count is
	// updated in place. Defaults to DefaultReplicas.
	Replicas int
	// Logger hears of topology changes; nil discards.
	Logger *slog.Logger
}

func (c QueueConfig) withDefaults() QueueConfig {
	c.AckWait = cmp.Or(c.AckWait, DefaultAckWait)
	c.MaxAckPending = cmp.Or(c.MaxAckPending, DefaultMaxAckPending)
	c.MaxMessages = cmp.Or(c.MaxMessages, DefaultMaxMessages)
	c.ResultsMaxAge = cmp.Or(c.ResultsMaxAge, DefaultResultsMaxAge)
	c.Replicas = cmp.Or(c.Replicas, DefaultReplicas)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Topology is the set of JetStream objects a queue needs.
type Topology struct {
	Tasks jetstream.Stream
	// Consumer is the durable of the queue's default priority; Levels
	// holds each priority's, by Rank (highest first): Levels[DefaultRank]
	// is Consumer.
	Consumer jetstream.Consumer
	Levels   [NumPriorities]jetstream.Consumer
	Results  jetstream.Stream
	Dead     jetstream.Stream
	Runs     jetstream.KeyValue
	// Presence holds a key per live consumer process (PresenceTTL).
	Presence jetstream.KeyValue
	// Sched holds the delayed tasks and the schedules, and Fired the
	// claims on fired tasks; both nil when the broker cannot hold
	// schedules (SchedSupported).
	Sched jetstream.Stream
	Fired jetstream.KeyValue
	// Cancel holds the cancelled tasks' marks (CancelBucket).
	Cancel jetstream.KeyValue
	// Counts holds the counters (CountsStream); nil when the broker
	// cannot keep them (it cannot hold schedules either).
	Counts jetstream.Stream
}

// ErrNoTopology says a queue's streams, durable consumer or buckets do
// not exist yet: a process that may not declare them (a consumer with its
// role's credential) waits for one that may.
var ErrNoTopology = errors.New("the queue's streams are not declared yet")

// LookupQueue finds the queue's topology without declaring anything: what
// a process whose credential may only use it does.
func LookupQueue(ctx context.Context, js jetstream.JetStream, queue string) (*Topology, error) {
	var t Topology
	var err error
	missing := func(what string, err error) error {
		if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
			errors.Is(err, jetstream.ErrBucketNotFound) {
			return fmt.Errorf("%w: %s", ErrNoTopology, what)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	if t.Tasks, err = js.Stream(ctx, TasksStream); err != nil {
		return nil, missing("stream "+TasksStream, err)
	}
	for _, p := range Priorities() {
		name := LevelDurable(queue, p)
		if t.Levels[p.Rank()], err = t.Tasks.Consumer(ctx, name); err != nil {
			return nil, missing("consumer "+name, err)
		}
	}
	t.Consumer = t.Levels[DefaultRank]
	if t.Results, err = js.Stream(ctx, ResultsStream); err != nil {
		return nil, missing("stream "+ResultsStream, err)
	}
	if t.Dead, err = js.Stream(ctx, DeadStream); err != nil {
		return nil, missing("stream "+DeadStream, err)
	}
	if t.Runs, err = js.KeyValue(ctx, RunsBucket); err != nil {
		return nil, missing("bucket "+RunsBucket, err)
	}
	if t.Presence, err = js.KeyValue(ctx, ConsumersBucket); err != nil {
		return nil, missing("bucket "+ConsumersBucket, err)
	}
	if t.Cancel, err = js.KeyValue(ctx, CancelBucket); err != nil {
		return nil, missing("bucket "+CancelBucket, err)
	}
	if SchedSupported(js.Conn().ConnectedServerVersion()) {
		if t.Sched, err = js.Stream(ctx, SchedStream); err != nil {
			return nil, missing("stream "+SchedStream, err)
		}
		if t.Fired, err = js.KeyValue(ctx, FiredBucket); err != nil {
			return nil, missing("bucket "+FiredBucket, err)
		}
		if t.Counts, err = js.Stream(ctx, CountsStream); err != nil {
			return nil, missing("stream "+CountsStream, err)
		}
	}
	return &t, nil
}

// PresenceTTL is how long a consumer's presence key outlives its last
// refresh; a live consumer refreshes it every PresenceTTL/4.
const PresenceTTL = 8 * time.Second

// DeadMaxAge is how long dead letters are kept.
const DeadMaxAge = 7 * 24 * time.Hour

// EnsureQueue creates or updates the streams, the queue's shared durable
// pull consumers (one per priority) and the runs bucket. Producers and consumers both call it,
// so either may start first.
func EnsureQueue(ctx context.Context, js jetstream.JetStream, cfg QueueConfig) (*Topology, error) {
	cfg = cfg.withDefaults()
	if err := task.ValidName(cfg.Name); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	ensure := func(sc jetstream.StreamConfig) (jetstream.Stream, error) {
		sc.Replicas = cfg.Replicas
		return link.EnsureStream(ctx, js, sc, cfg.Logger)
	}
	ensureKV := func(kc jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
		kc.Replicas = cfg.Replicas
		return link.EnsureKeyValue(ctx, js, kc, cfg.Logger)
	}
	var topo Topology
	var sources []*jetstream.StreamSource
	// The schedules' stream first: the task stream sources from it.
	sched, err := EnsureSched(ctx, js, cfg.Replicas, cfg.Logger)
	if err != nil {
		return nil, err
	}
	if sched != nil {
		topo.Sched = sched
		if topo.Fired, err = ensureKV(FiredBucketConfig(cfg.Replicas)); err != nil {
			return nil, fmt.Errorf("bucket %s: %w", FiredBucket, err)
		}
		sources = []*jetstream.StreamSource{TasksSource()}
		if err := EnsureSourceConsumer(ctx, js, sources[0], cfg.Replicas); err != nil {
			return nil, err
		}
		if topo.Counts, err = ensure(CountsStreamConfig(cfg.Replicas)); err != nil {
			return nil, fmt.Errorf("stream %s: %w", CountsStream, err)
		}
		// Unique tasks' keys (per-key TTLs, as old as schedules): here, so
		// that a status never looks for a bucket that is not there (in a
		// cluster a missing stream waits for the meta leader's answer).
		if _, err = ensureKV(UniqueBucketConfig(cfg.Replicas)); err != nil {
			return nil, fmt.Errorf("bucket %s: %w", UniqueBucket, err)
		}
	}
	tasks, err := ensure(jetstream.StreamConfig{
		Name:        TasksStream,
		Description: "procq work queues",
		Subjects:    []string{TasksPrefix + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardNew,
		MaxMsgs:     cfg.MaxMessages,
		Sources:     sources,
	})
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", TasksStream, err)
	}
	// The default level's durable first: one declared before priorities
	// took every subject of the queue, and must give up the other levels'
	// before their durables can exist (a WorkQueue stream's durables may
	// not overlap).
	// A level declared while the queue is paused is paused with it.
	var pausedUntil *time.Time
	for _, p := range []Priority{PriorityDefault, PriorityHigh, PriorityLow} {
		name := LevelDurable(cfg.Name, p)
		desc := "shared by every consumer of queue " + cfg.Name
		if p != PriorityDefault {
			desc += ", its " + string(p) + "-priority tasks"
		}
		cons, err := link.EnsureConsumer(ctx, tasks, jetstream.ConsumerConfig{
			Durable:        name,
			Description:    desc,
			FilterSubjects: LevelFilters(cfg.Name, p),
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        cfg.AckWait,
			// The try limit is enforced by the consumer from the delivery count,
			// because a sentinel that must wait for unfinished work is handed
			// back with a delay, and that counts as a delivery too.
			MaxDeliver:    -1,
			MaxAckPending: cfg.MaxAckPending,
		})
		if err != nil {
			return nil, fmt.Errorf("consumer %s: %w", name, err)
		}
		topo.Levels[p.Rank()] = cons
		info := cons.CachedInfo()
		switch {
		case p == PriorityDefault && info.Paused:
			until := info.TimeStamp.Add(info.PauseRemaining)
			pausedUntil = &until
		case pausedUntil != nil && !info.Paused:
			if _, err := js.PauseConsumer(ctx, TasksStream, name, *pausedUntil); err != nil {
				return nil, fmt.Errorf("consumer %s: pause with the queue: %w", name, err)
			}
		}
	}
	results, err := ensure(jetstream.StreamConfig{
		Name:        ResultsStream,
		Description: "procq task results, read by their producer and then removed",
		Subjects:    []string{ResultsPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		MaxAge:      cfg.ResultsMaxAge,
		// The de-duplication window drops a redelivered task's second
		// result (same Nats-Msg-Id); the producer also keeps only the first.
		Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", ResultsStream, err)
	}
	dead, err := ensure(jetstream.StreamConfig{
		Name:        DeadStream,
		Description: "procq dead letters: messages that can never succeed, with the reason",
		Subjects:    []string{DeadPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		MaxAge:      DeadMaxAge,
	})
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", DeadStream, err)
	}
	runs, err := ensureKV(jetstream.KeyValueConfig{
		Bucket:      RunsBucket,
		Description: "the current run of each queue",
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", RunsBucket, err)
	}
	presence, err := ensureKV(jetstream.KeyValueConfig{
		Bucket:      ConsumersBucket,
		Description: "live consumer processes, one key each, gone when not refreshed",
		Storage:     jetstream.MemoryStorage,
		TTL:         PresenceTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", ConsumersBucket, err)
	}
	cancelled, err := ensureKV(CancelBucketConfig(cfg.Replicas))
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", CancelBucket, err)
	}
	topo.Consumer = topo.Levels[DefaultRank]
	topo.Tasks, topo.Results, topo.Dead, topo.Runs, topo.Presence = tasks, results, dead, runs, presence
	topo.Cancel = cancelled
	return &topo, nil
}

// EnsureSched creates or updates SchedStream and returns it; nil and no
// error when the broker cannot hold schedules (SchedSupported), so that
// procq runs on an older NATS without tasks in time.
func EnsureSched(ctx context.Context, js jetstream.JetStream, replicas int, logger *slog.Logger) (jetstream.Stream, error) {
	if !SchedSupported(js.Conn().ConnectedServerVersion()) {
		return nil, nil
	}
	s, err := link.EnsureStream(ctx, js, SchedStreamConfig(cmp.Or(replicas, DefaultReplicas)), logger)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", SchedStream, err)
	}
	return s, nil
}

// MsgQueuePrefix is the subject prefix of the message queues (package
// msgq), one stream each.
const MsgQueuePrefix = "procq.q"

// MsgQueueStream is the stream that holds the named message queue's items.
func MsgQueueStream(name string) string { return "PROCQ_Q_" + name }

// MsgQueueSubject is the subject items of the named message queue are put
// on.
func MsgQueueSubject(name string) string { return MsgQueuePrefix + "." + name }

// MsgQueueGetters is the durable consumer every getter of a message queue
// shares, so that each item goes to one getter.
const MsgQueueGetters = "get"

// MsgQueueStreamConfig is the shape of the named message queue's stream:
// a work queue, first in first out, that refuses new items when it holds
// maxsize (0: no bound, or the bound it has).
// With sched, its delayed items arrive from SchedStream (MsgQueueSource).
func MsgQueueStreamConfig(name string, maxsize int64, replicas int, sched bool) jetstream.StreamConfig {
	var sources []*jetstream.StreamSource
	if sched {
		sources = []*jetstream.StreamSource{MsgQueueSource(name)}
	}
	return jetstream.StreamConfig{
		Sources:    sources,
		Name:       MsgQueueStream(name),
		Subjects:   []string{MsgQueueSubject(name)},
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    jetstream.FileStorage,
		Discard:    jetstream.DiscardNew,
		MaxMsgs:    maxsize,
		Replicas:   replicas,
		Duplicates: 2 * time.Minute,
	}
}

// MsgQueueGettersConfig is the shape of a message queue's getters'
// consumer: an item taken and not done within 30 s goes back.
func MsgQueueGettersConfig(replicas int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:   MsgQueueGetters,
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   30 * time.Second,
		Replicas:  replicas,
	}
}

// PipeKeep is how long a pipe's messages and its ends' claims are kept
// at most; PipeMarkerTTL how long the marker of a released claim stays.
const (
	PipeKeep      = 24 * time.Hour
	PipeMarkerTTL = time.Second
)

// PipesStreamConfig is the shape of the stream of every pipe's messages.
func PipesStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        PipesStream,
		Description: "procq pipes: the messages of each end, until both ends closed",
		Subjects:    []string{PipePrefix + ".>"},
		Storage:     jetstream.FileStorage,
		MaxAge:      PipeKeep,
		Replicas:    replicas,
	}
}

// PipeEndsBucketConfig is the shape of the bucket of the claims on pipe
// ends: leases with per-key TTLs, renewed by their holders.
func PipeEndsBucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:         PipeEndsBucket,
		Description:    "claims on pipe ends: leases renewed by their holders",
		Storage:        jetstream.FileStorage,
		TTL:            PipeKeep,
		LimitMarkerTTL: PipeMarkerTTL, // enables per-key TTLs: the leases
		Replicas:       replicas,
	}
}
