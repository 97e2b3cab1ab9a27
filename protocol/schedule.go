package protocol

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Tasks in time: delayed tasks and periodic schedules are JetStream
// message schedules (ADR-51) in their own stream, PROCQ_SCHED. A stream
// with schedules may not refuse new messages (DiscardNew), which the task
// stream does for back-pressure, so the schedules live apart and their
// firings reach the task stream (and each message queue) by a stream
// source with a subject transform. The broker fires them; procq runs no
// scheduler process, and with queue.replicas: 3 the schedules are
// replicated stream state that outlives any one node.
//
// The subjects, for a target subject procq.<rest> (a queue's work subject
// or a message queue's subject):
//
//	procq.sched.at.<rest>.<id>     a delayed task (Nats-Schedule: @at ...)
//	procq.sched.cron.<name>        a periodic schedule, by its name
//	procq.sched.fire.<rest>        where a firing lands, sourced on to procq.<rest>
const (
	// SchedStream holds the schedules and, until sourced on, their firings.
	SchedStream = "PROCQ_SCHED"
	// SchedPrefix is the subject prefix of SchedStream.
	SchedPrefix = "procq.sched"
	// FiredBucket holds one key per fired task a consumer took: the claim
	// that makes a firing that reached the task stream twice run once.
	FiredBucket = "PROCQ_FIRED"
	// FiredKeep is how long a claim is kept: a second copy of a firing
	// that waits in the queue longer than this after the first ran would
	// run again.
	FiredKeep = 24 * time.Hour
)

// Header names of tasks in time.
const (
	// HeaderTaskID is a delayed or fired task's id: the delayed task's own
	// id, or the schedule's name for a periodic schedule (each firing's id
	// is then FiringID's).
	HeaderTaskID = "Procq-Task-Id"
	// HeaderDue is when a delayed task is due, RFC 3339: its lateness is
	// measured from it.
	HeaderDue = "Procq-Due"
	// HeaderSchedule names the periodic schedule a task was fired by.
	HeaderSchedule = "Procq-Schedule"
	// HeaderScheduler is set by the broker on a fired copy: the subject of
	// the schedule that fired it.
	HeaderScheduler = "Nats-Scheduler"
	// HeaderScheduleNext is set by the broker on a fired copy: the time of
	// the schedule's next firing, or "purge" for a one-off.
	HeaderScheduleNext = "Nats-Schedule-Next"
	// HeaderSchedule... are what a client sets on a schedule.
	HeaderSchedulePattern  = "Nats-Schedule"
	HeaderScheduleTarget   = "Nats-Schedule-Target"
	HeaderScheduleTimeZone = "Nats-Schedule-Time-Zone"
	// HeaderExpectedLastSubjSeq makes a publish conditional on the
	// subject's last sequence (0: the subject is empty).
	HeaderExpectedLastSubjSeq = "Nats-Expected-Last-Subject-Sequence"
)

// SchedMinServer is the oldest nats-server whose message schedules procq
// relies on: cron with time zones (2.14) and the refusal of schedules in
// a DiscardNew stream (2.14.2).
const SchedMinServer = "2.14.2"

// SchedSupported reports whether a nats-server of version (as it reports
// it, e.g. "2.15.2" or "2.14.2-RC.1") has the message schedules procq
// needs.
func SchedSupported(version string) bool {
	have, ok := semver(version)
	want, _ := semver(SchedMinServer)
	if !ok {
		return false
	}
	for i := range have {
		if have[i] != want[i] {
			return have[i] > want[i]
		}
	}
	return true
}

func semver(v string) ([3]int, bool) {
	var out [3]int
	v, _, _ = strings.Cut(strings.TrimPrefix(v, "v"), "-")
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return out, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return out, false
		}
		out[i] = n
	}
	return out, true
}

// ErrNoSchedules says the broker cannot hold schedules.
type ErrNoSchedules struct{ Version string }

func (e *ErrNoSchedules) Error() string {
	return fmt.Sprintf("delayed tasks and schedules need nats-server %s or later (message schedules); the broker is nats-server %s",
		SchedMinServer, e.Version)
}

// SchedStreamConfig is the shape of SchedStream: a work queue (a firing
// is gone once its source took it on; an @at schedule is purged by its
// own firing), keeping the oldest when full is never reached (DiscardOld,
// which schedules require).
func SchedStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              SchedStream,
		Description:       "procq delayed tasks and schedules, fired by the broker into the queues",
		Subjects:          []string{SchedPrefix + ".>"},
		Retention:         jetstream.WorkQueuePolicy,
		Storage:           jetstream.FileStorage,
		Discard:           jetstream.DiscardOld,
		AllowMsgSchedules: true,
		AllowMsgTTL:       true,
		AllowDirect:       true, // listing reads its messages in batches
		Replicas:          replicas,
	}
}

// FiredBucketConfig is the shape of FiredBucket.
func FiredBucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      FiredBucket,
		Description: "fired tasks taken by a consumer: a second copy of a firing runs never",
		Storage:     jetstream.FileStorage,
		TTL:         FiredKeep,
		Replicas:    replicas,
	}
}

// rest is target without its "procq." prefix.
func rest(target string) string { return strings.TrimPrefix(target, "procq.") }

// DelayedSubject is the subject of the delayed task id whose firing goes
// to target.
func DelayedSubject(target, id string) string { return SchedPrefix + ".at." + rest(target) + "." + id }

// FireSubject is where the schedules whose tasks go to target fire.
func FireSubject(target string) string { return SchedPrefix + ".fire." + rest(target) }

// PeriodicSubject is the subject of the named periodic schedule.
func PeriodicSubject(name string) string { return SchedPrefix + ".cron." + name }

// PeriodicFilter matches every periodic schedule.
const PeriodicFilter = SchedPrefix + ".cron.*"

// DelayedFilter matches every delayed task.
const DelayedFilter = SchedPrefix + ".at.>"

// DelayedQueueFilter matches the delayed tasks of a task queue.
func DelayedQueueFilter(queue string) string { return DelayedSubject(TasksPrefix+"."+queue, ">") }

// DelayedIDFilters match the delayed task with the given id, whatever
// its target: a run's task, a map's task, or a message queue's item.
func DelayedIDFilters(id string) []string {
	return []string{
		DelayedSubject(TasksPrefix+".*.*.*", id), // a run's task, at any level
		DelayedSubject(TasksPrefix+".*.*.*.*", id),
		DelayedSubject(MsgQueuePrefix+".*", id),
	}
}

// DelayedID is the id of the delayed task on subject, the last token.
func DelayedID(subject string) string { return subject[strings.LastIndexByte(subject, '.')+1:] }

// DelayedTarget is where the delayed task on subject goes: the queue's
// work subject or the message queue's.
func DelayedTarget(subject string) string {
	s := strings.TrimPrefix(subject, SchedPrefix+".at.")
	return "procq." + s[:max(strings.LastIndexByte(s, '.'), 0)]
}

// ScheduleRun is the run token of a periodic schedule's fired tasks:
// their work subject is WorkSubject(queue, ScheduleRun)+"."+name.
const ScheduleRun = "schedule"

// PeriodicTarget is the work subject of the named schedule's tasks on
// queue.
func PeriodicTarget(queue, name string) string { return WorkSubject(queue, ScheduleRun) + "." + name }

// TasksSource is the task stream's source of fired tasks: every firing on
// procq.sched.fire.tasks.> lands on procq.tasks.>, read through the
// durable SourceConsumer(TasksStream, ...).
func TasksSource() *jetstream.StreamSource {
	return schedSource(TasksStream, FireSubject(TasksPrefix)+".>", TasksPrefix+".>")
}

// MsgQueueSource is the named message queue's source of its delayed
// items.
func MsgQueueSource(name string) *jetstream.StreamSource {
	return schedSource(MsgQueueStream(name), FireSubject(MsgQueueSubject(name)), MsgQueueSubject(name))
}

func schedSource(stream, from, to string) *jetstream.StreamSource {
	return &jetstream.StreamSource{
		Name:              SchedStream,
		SubjectTransforms: []jetstream.SubjectTransformConfig{{Source: from, Destination: to}},
		Consumer:          &jetstream.StreamConsumerSource{Name: SourceDurable(stream), DeliverSubject: sourceDeliver(stream)},
	}
}

// Sourcing. A stream fed with SchedStream's firings (the task stream, a
// message queue's) reads them through a durable consumer of SchedStream of
// its own, whose acknowledgements follow what the stream stored
// (AckFlowControl, nats-server 2.14): a firing leaves SchedStream, a work
// queue, only once the stream holds it. The consumer nats-server makes for
// a source by default acknowledges on delivery (AckNone): a firing
// delivered to a full task stream (DiscardNew) was removed from
// SchedStream and refused by the full stream, lost.

// SourceDurable is the name of the durable consumer of SchedStream that
// stream sources its firings through.
func SourceDurable(stream string) string { return "procq_src_" + stream }

// sourceDeliver is where that consumer delivers: a subject no stream
// takes.
func sourceDeliver(stream string) string { return "procq.src." + stream }

// SourceConsumerConfig is the shape of the durable consumer of
// SchedStream that src (TasksSource, MsgQueueSource) reads through.
func SourceConsumerConfig(src *jetstream.StreamSource, replicas int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        src.Consumer.Name,
		Description:    "firings on their way to the stream sourcing them, acknowledged once it stored them",
		DeliverSubject: src.Consumer.DeliverSubject,
		FilterSubject:  src.SubjectTransforms[0].Source,
		AckPolicy:      jetstream.AckFlowControlPolicy,
		FlowControl:    true,
		IdleHeartbeat:  time.Second, // what AckFlowControl requires
		MaxAckPending:  sourceMaxAckPending,
		Replicas:       replicas,
	}
}

// EnsureSourceConsumer makes the durable consumer of SchedStream that src
// reads through, with its replicas, before the stream is declared with
// src; one there as wanted is left as it is.
func EnsureSourceConsumer(ctx context.Context, js jetstream.JetStream, src *jetstream.StreamSource, replicas int) error {
	cfg := SourceConsumerConfig(src, cmp.Or(replicas, DefaultReplicas))
	if c, err := js.PushConsumer(ctx, SchedStream, cfg.Durable); err == nil && c.CachedInfo().Config.Replicas == cfg.Replicas {
		return nil
	}
	if _, err := js.CreateOrUpdatePushConsumer(ctx, SchedStream, cfg); err != nil {
		return fmt.Errorf("consumer %s of stream %s: %w", cfg.Durable, SchedStream, err)
	}
	return nil
}

// sourceMaxAckPending bounds the firings on their way at once.
const sourceMaxAckPending = 10_000

// RunDelayedFilters match what a run still has in SchedStream, at every
// priority: its delayed tasks not fired yet, and its firings not yet
// sourced on to the task stream (maps' subjects extend the run's).
func RunDelayedFilters(queue, run string) []string {
	work := TasksPrefix + "." + queue + ".*." + run // LevelSubject, any level
	return []string{
		DelayedSubject(work, ">"),
		FireSubject(work),
		FireSubject(work) + ".>",
	}
}

// BrokerSet reports whether header k is one the broker sets on a fired
// or sourced copy (Nats-Stream-Source, Nats-Scheduler, Nats-Schedule*):
// a client may not publish it, so a dead letter or a requeued task leaves
// it out.
func BrokerSet(k string) bool {
	return k == "Nats-Stream-Source" || k == HeaderScheduler || strings.HasPrefix(k, HeaderSchedulePattern)
}

// FiredKey is a firing's claim key in FiredBucket: under its queue, so a
// consumer's credential may claim its own queue's firings only; a firing
// id that is no valid key (a foreign client's) is replaced by its digest.
func FiredKey(queue, firing string) string { return queue + "." + KeyToken(firing) }

// KeyToken is id as the last tokens of a key-value key: itself when it is
// one (dot-separated words of letters, digits, '-' and '_', at most 200
// bytes), else a digest of it.
func KeyToken(id string) string {
	if len(id) > 200 || !validKey(id) {
		sum := sha256.Sum256([]byte(id))
		return "h-" + hex.EncodeToString(sum[:])
	}
	return id
}

// validKey is keyRE's test without a regular expression: it runs for
// every task a consumer could cancel.
func validKey(s string) bool {
	word := 0 // length of the current word
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			if word == 0 {
				return false
			}
			word = 0
		case c == '-' || c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
			word++
		default:
			return false
		}
	}
	return word > 0
}

// FiredFilter matches the claim keys of queue's firings whose ids match
// pattern (a KV key filter: "tick.*", ">").
func FiredFilter(queue, pattern string) string { return queue + "." + pattern }

// CancelledClaim is the claim a cancelled delayed task's firing finds:
// any copy of it that still reaches the queue is dropped.
const CancelledClaim = "cancelled"

// FiringID is the id of one firing of a fired task: a delayed task's own
// id; for a periodic schedule, its name and the time of its next firing,
// which is the same on every copy of one firing and differs between
// firings.
func FiringID(taskID, next string) string {
	if next == "" || next == "purge" {
		return taskID
	}
	if t, err := time.Parse(time.RFC3339Nano, next); err == nil {
		return taskID + ".next-" + strconv.FormatInt(t.Unix(), 10)
	}
	return taskID
}

// ScheduleAt is the pattern of a one-off schedule due at t (RFC 3339 with
// the fraction of a second: the broker reads one).
func ScheduleAt(t time.Time) string { return "@at " + t.UTC().Format(time.RFC3339Nano) }
