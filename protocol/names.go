package protocol

import (
	"fmt"
)

// Header names of a procq message. Metadata travels in NATS headers; arguments
// and results travel as JSON bodies.
const (
	// HeaderKind names the task kind, the key a consumer looks up in its
	// Registry.
	HeaderKind = "Procq-Kind"
	// HeaderRun is the id of the producer run the message belongs to.
	HeaderRun = "Procq-Run"
	// HeaderIndex is the position of the task in its run, counting from 0.
	HeaderIndex = "Procq-Index"
	// HeaderSentinel is "1" on a sentinel: the message that tells one
	// consumer to exit.
	HeaderSentinel = "Procq-Sentinel"
	// HeaderReply is the subject a consumer publishes the task's result to.
	// A task without it is fire-and-forget (the Queue demo).
	HeaderReply = "Procq-Reply"
	// HeaderChunk is the number of inputs packed into one message; the body
	// is then a JSON array of that many argument values.
	HeaderChunk = "Procq-Chunk"
	// HeaderError carries a failed task's error text on a result or a dead
	// letter.
	HeaderError = "Procq-Error"
	// HeaderConsumer names the consumer that produced a result or a dead letter.
	HeaderConsumer = "Procq-Consumer"
	// HeaderSubject is the original subject of a dead-lettered message.
	HeaderSubject = "Procq-Subject"
	// HeaderDelivered is how many times a dead-lettered message was delivered.
	HeaderDelivered = "Procq-Delivered"
	// HeaderLabel names a task for the Process demo: a consumer prints
	// "Process <label> (PID: <pid>) starting..." and a finished line for it.
	HeaderLabel = "Procq-Label"
	// HeaderPipe is "eof" on the last message of a pipe end.
	HeaderPipe = "Procq-Pipe"
	// HeaderMsgID is the JetStream de-duplication header.
	HeaderMsgID = "Nats-Msg-Id"
	// HeaderOrigMsgID keeps a dead letter's original Nats-Msg-Id. It is
	// renamed so that the dead-letter stream does not de-duplicate by it and
	// a requeued copy is not taken for a duplicate of the original.
	HeaderOrigMsgID = "Procq-Msg-Id"
	// HeaderDeadline is when a task stops being worth running, RFC 3339:
	// a consumer that takes it later runs nothing, answers each input
	// DeadlineReason and dead-letters it.
	HeaderDeadline = "Procq-Deadline"
	// HeaderUnanswered is "1" on a dead letter of a map's task that no
	// answer follows: its answer could not be stored (the results stream
	// refused it for longer than the consumer's store timeout). The map
	// fails the task's inputs with its reason. Every other dead letter of
	// a map's task is answered on its reply subject (an input failed, the
	// task could never run), the answer stored after it.
	HeaderUnanswered = "Procq-Unanswered"
	// HeaderTrimmed is set on a dead letter whose body was cut to fit the
	// broker's max payload: the original body's size in bytes.
	HeaderTrimmed = "Procq-Trimmed"
)

// DeadlineReason begins the error of a task taken after its deadline.
const DeadlineReason = "deadline passed"

// Stream and bucket names of the JetStream topology.
const (
	// TasksStream holds the work of every queue, with WorkQueue retention.
	TasksStream = "PROCQ_TASKS"
	// ResultsStream holds task results until their producer reads them.
	ResultsStream = "PROCQ_RESULTS"
	// DeadStream holds messages that can never succeed, with the reason.
	DeadStream = "PROCQ_DEAD"
	// RunsBucket is the key-value bucket that records each queue's current run.
	RunsBucket = "PROCQ_RUNS"
	// ConsumersBucket holds one key per live consumer process,
	// "<queue>.<name>", refreshed while it runs and gone by itself
	// (the bucket's TTL) once it stops refreshing.
	ConsumersBucket = "PROCQ_CONSUMERS"
	// PipesStream holds the messages of every pipe.
	PipesStream = "PROCQ_PIPES"
	// PipeEndsBucket holds the claims on pipe ends.
	PipeEndsBucket = "PROCQ_PIPE_ENDS"
)

// Streams are every stream procq keeps, buckets by their backing stream.
func Streams() []string {
	return []string{TasksStream, ResultsStream, DeadStream, "KV_" + RunsBucket,
		"KV_" + ConsumersBucket, PipesStream, "KV_" + PipeEndsBucket, SchedStream, "KV_" + FiredBucket, "KV_" + CancelBucket, CountsStream, "KV_" + UniqueBucket}
}

// Subject prefixes of the topology. Every subject is built by the functions
// below, so the scheme lives in one place.
const (
	TasksPrefix   = "procq.tasks"
	ResultsPrefix = "procq.results"
	DeadPrefix    = "procq.dead"
	PipePrefix    = "procq.pipe"
	NoticePrefix  = "procq.notice"
)

// WorkSubject is the subject of a queue's work messages of one run (or one
// pool map): the run token lets a cancelled map's unfinished tasks be purged.
func WorkSubject(queue, run string) string { return TasksPrefix + "." + queue + ".work." + run }

// The roles a process reaches procq's own broker in: the broker issues a
// credential for RoleProducer and RoleConsumer (IssuedRoles); RoleAdmin
// presents the token.
const (
	RoleAdmin    = ""
	RoleProducer = "producer"
	RoleConsumer = "consumer"
)

// IssuedRoles are the roles the broker issues credentials for, each in a
// file named after it.
func IssuedRoles() []string { return []string{RoleProducer, RoleConsumer} }

// RoleUser is the NATS user of a role (producer, consumer) on queue, on
// procq's own broker.
func RoleUser(role, queue string) string { return "procq-" + role + "-" + queue }

// WorkFilter matches every work message of a queue, of any run, at every
// priority (LevelSubject).
func WorkFilter(queue string) string { return TasksPrefix + "." + queue + ".*.>" }

// SentinelSubject is the subject of a queue's sentinels.
func SentinelSubject(queue string) string { return TasksPrefix + "." + queue + ".sentinel" }

// QueueFilter matches every message of a queue: work of every priority
// and sentinels.
func QueueFilter(queue string) string { return TasksPrefix + "." + queue + ".>" }

// ResultSubject is the subject a run's results are published to.
func ResultSubject(run string) string { return ResultsPrefix + "." + run }

// IsResultSubject reports whether s is a results subject, the only kind
// a task's Procq-Reply may name.
func IsResultSubject(s string) bool {
	return len(s) > len(ResultsPrefix)+1 && s[:len(ResultsPrefix)+1] == ResultsPrefix+"."
}

// NoticeSubject is the core NATS subject (stored by no stream) on which
// consumers tell a map's producer that they could not store its results,
// so that a broker whose store is failing makes the map fail loudly
// instead of wait.
func NoticeSubject(run string) string { return NoticePrefix + "." + run }

// DeadSubject is the subject a queue's dead letters are stored under.
func DeadSubject(queue string) string { return DeadPrefix + "." + queue }

// DurableName is the name of the shared durable pull consumer of a
// queue's default priority (LevelDurable names the others).
func DurableName(queue string) string { return "procq_" + queue }

// PresenceKey is a consumer's key in ConsumersBucket.
func PresenceKey(queue, name string) string { return queue + "." + name }

// PresenceFilter matches the presence keys of a queue's consumers.
func PresenceFilter(queue string) string { return queue + ".*" }

// MsgID is the de-duplication id of the message or result at index of run.
func MsgID(run string, index int) string { return fmt.Sprintf("%s.%d", run, index) }

// PipeEOF is the value of HeaderPipe on the end-of-file marker, the last
// message an end of a pipe publishes.
const PipeEOF = "eof"

// PipeSubject is the subject end ("a" or "b") of the named pipe publishes
// on; its peer reads it.
func PipeSubject(name, end string) string { return PipePrefix + "." + name + "." + end }

// PipeFilter matches the messages of both ends of the named pipe.
func PipeFilter(name string) string { return PipePrefix + "." + name + ".>" }

// PipeKey is the key of an end's claim in PipeEndsBucket.
func PipeKey(name, end string) string { return name + "." + end }
