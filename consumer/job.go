package consumer

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// The worker's shared vocabulary: a task as the worker holds it, a
// finished task awaiting its answer's storage, and the bounds and pauses
// every part of the worker uses.

// job is a task message as the worker reads it.
type job struct {
	msg      jetstream.Msg
	kind     string
	run      string
	reply    string
	index    int // -1 when the header is missing or bad
	attempt  uint64
	inputs   int               // inputs the message carries (claims to, until read)
	args     []json.RawMessage // its inputs, once split (elems)
	chunk    task.Chunk        // the body, when chunked
	chunked  bool              // the body is a Procq-Chunk array of args
	began    time.Time         // when it started to run
	claim    *firedClaim       // a fired task's claim (fired.go)
	limit    time.Duration     // its time limit; 0: none
	limitErr string            // why its time limit header is bad
	// overLimit is the limit a handler was abandoned at (hard); 0: none.
	overLimit time.Duration
	base      *slog.Logger
	attrs     []any        // the task's log attributes
	log       *slog.Logger // base with attrs, built when first needed
}

// elems is the message's inputs: its body, or a chunk's elements.
func (j *job) elems() []json.RawMessage {
	if j.args == nil && j.chunked {
		j.args = j.chunk.Elems()
	}
	return j.args
}

// inputID is the task id of the message's input i (protocol.TaskID),
// or its Procq-Task-Id when it has no run and index.
func (j *job) inputID(i int) string {
	if j.run == "" || j.index < 0 {
		return j.msg.Headers().Get(protocol.HeaderTaskID)
	}
	return protocol.TaskID(j.run, j.index+i)
}

// debug logs msg at debug level with the task's attributes, building its
// logger only when debug is enabled: a logger per task was a quarter of a
// consumer's CPU on tiny tasks.
func (j *job) debug(ctx context.Context, msg string) {
	if j.base.Enabled(ctx, slog.LevelDebug) {
		j.logger().DebugContext(ctx, msg)
	}
}

// logger is the worker's logger with the task's attributes. It is built
// on first use: most tasks log nothing at the default level.
func (j *job) logger() *slog.Logger {
	if j.log == nil {
		j.log = j.base.With(j.attrs...)
	}
	return j.log
}

// publishTimeout bounds a result or dead-letter publish, which runs even
// while the worker stops so that finished work is not lost.
const publishTimeout = 10 * time.Second

// finished is a task whose answer waits to be stored. dead, when set, is
// why the task is dead-lettered once its answer is stored (an input
// failed).
type finished struct {
	job    *job
	answer protocol.Answer
	dead   string
}

// maxBatch caps the answers the result loop gathers at once.
const maxBatch = 128

// ackQueue bounds the answers awaiting storage.
const ackQueue = 1024

// headerRoom is the part of the broker's max payload kept for a result
// message's headers.
const headerRoom = 4 << 10

// retryPause is the pause before a pull, a publish or a read of the broker
// that failed is tried again.
const retryPause = 250 * time.Millisecond

// backoff is the delay before a task whose answer or dead letter could not
// be stored comes back: growing with its deliveries, at most 5s.
func backoff(attempt uint64) time.Duration {
	return min(time.Duration(attempt)*retryPause, 5*time.Second)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// maxInputs bounds the inputs an error answer is made for.
const maxInputs = 1 << 20
