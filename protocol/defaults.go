package protocol

import "time"

// The defaults every part of procq shares (the connection's are link's
// DefaultURL and DefaultConnectTimeout): config's defaults (config.yaml
// documents them) and each package's Config use these, so that a library
// user and an executable get the same queue.
const (
	// DefaultAckWait is a task's lease: a consumer that holds a task
	// renews it while it runs; one that stops renewing loses it after
	// this long and the task is delivered again.
	DefaultAckWait = 4 * time.Second
	// DefaultMaxDeliver is how many times a task is tried.
	DefaultMaxDeliver = 5
	// DefaultMaxAckPending caps the tasks in flight across a queue's
	// consumers.
	DefaultMaxAckPending = 1000
	// DefaultMaxMessages caps the task stream: a full queue refuses new
	// work rather than drop queued work.
	DefaultMaxMessages = 1_000_000
	// DefaultPutTimeout bounds a put's wait for room in a full queue.
	DefaultPutTimeout = 30 * time.Second
	// DefaultReplicas is the replica count of every stream and bucket.
	DefaultReplicas = 1
	// DefaultResultsMaxAge is how long an unread result is kept.
	DefaultResultsMaxAge = time.Hour
	// DefaultWindow caps a map's task messages in flight.
	DefaultWindow = 1024
	// DefaultIdleTimeout is how long a map waits with no live consumer
	// before it fails.
	DefaultIdleTimeout = 30 * time.Second
	// DefaultPeerTimeout is how long a pipe end waits for its peer.
	DefaultPeerTimeout = 10 * time.Second
	// DefaultRetryBackoff and DefaultRetryBackoffMax bound the pause
	// before a task that asked for a retry (task.Retry) is tried again.
	DefaultRetryBackoff    = time.Second
	DefaultRetryBackoffMax = time.Minute
	// MaxAutoChunk caps the automatic chunk size, which otherwise follows
	// Python's Pool.map: inputs / (4 x workers). A chunk also ends early
	// once its inputs reach a quarter of the broker's max payload, so big
	// inputs never outgrow a message; an answer too large travels in
	// parts.
	MaxAutoChunk = 10_000
)

// Bounds that config enforces on its keys and the front door on its
// options alike.
const (
	// MaxProcesses bounds consumer processes, consumers and slots.
	MaxProcesses = 1024
	// MaxChunkSize bounds the inputs of one task message.
	MaxChunkSize = 100_000
	// MaxWindow bounds a map's task messages in flight.
	MaxWindow = 100_000
)
