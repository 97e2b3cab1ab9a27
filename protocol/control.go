package protocol

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Control over each task: its id, the cancel marks every consumer of a
// queue watches, the cancel requests a map's producer answers, the time
// limit a task carries, and the counters of what these controls did.

const (
	// HeaderTimeout is a task's own time limit, a Go duration ("30s"):
	// its handler's context is cancelled then, and a handler that has not
	// returned a grace later is abandoned (consumers.task_timeout sets the
	// default).
	HeaderTimeout = "Procq-Timeout"

	// CancelBucket holds a mark per cancelled task, keyed by queue and
	// task id (CancelKey): a consumer that takes a marked task does not
	// run it, and one running it cancels its handler's context.
	CancelBucket = "PROCQ_CANCEL"
	// CancelKeep is how long a cancel mark is kept.
	CancelKeep = 24 * time.Hour
	// CancelPrefix is the prefix of the subjects on which a map's
	// producer answers cancel requests for its tasks (CancelSubject).
	CancelPrefix = "procq.cancel"

	// CountsStream holds procq's counters (JetStream message counters,
	// one subject per counter and queue: CountSubject).
	CountsStream = "PROCQ_COUNTS"
	// CountsPrefix is the prefix of the counters' subjects.
	CountsPrefix = "procq.count"
)

// What is counted in CountsStream.
const (
	CountTimedOut  = "timed_out" // tasks stopped at their time limit
	CountCancelled = "cancelled" // tasks cancelled before or while they ran
	CountDuplicate = "duplicate" // unique puts refused as duplicates
)

// Errors of a cancel.
var (
	// ErrFinished: the task has its result already.
	ErrFinished = errors.New("already finished")
	// ErrNoTask: no running map or delayed task has a task of that id.
	ErrNoTask = errors.New("no such task")
)

// MaxTimeout is the longest time limit a task may have (as
// consumers.task_timeout).
const MaxTimeout = 24 * time.Hour

// TaskID is the id of input index of map run: the Procq-Task-Id of a task
// that was not delayed (a delayed task's id is its schedule's).
func TaskID(run string, index int) string { return MsgID(run, index) }

// SplitTaskID splits a task id made by TaskID into its run and index.
func SplitTaskID(id string) (run string, index int, ok bool) {
	i := strings.LastIndexByte(id, '.')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(id[i+1:])
	if err != nil || n < 0 {
		return "", 0, false
	}
	return id[:i], n, true
}

// CancelKey is the key of task id's cancel mark in CancelBucket.
func CancelKey(queue, id string) string { return FiredKey(queue, id) }

// CancelSubject is where the producer of map run answers cancel requests
// (CancelRequest) for the map's tasks.
func CancelSubject(run string) string { return CancelPrefix + "." + run }

// CancelRequest asks a map's producer to cancel one of its tasks.
type CancelRequest struct {
	Index int `json:"index"`
}

// CancelReply is the producer's answer to a CancelRequest: Error is ""
// when the task is cancelled, else why not ("already finished", "no such
// task").
type CancelReply struct {
	Queue string `json:"queue,omitempty"`
	// Code says why not, for programs: CancelFinished or CancelNoTask
	// (or "" with an Error of another kind).
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
}

// The codes of a CancelReply.
const (
	CancelFinished = "finished"
	CancelNoTask   = "no_task"
)

// CancelBucketConfig is the shape of CancelBucket.
func CancelBucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      CancelBucket,
		Description: "cancelled tasks: a consumer does not run a marked task and stops one it runs",
		Storage:     jetstream.FileStorage,
		TTL:         CancelKeep,
		Replicas:    replicas,
	}
}

// CountsStreamConfig is the shape of CountsStream: message counters
// (nats-server 2.12 and later, as schedules need later still).
func CountsStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              CountsStream,
		Description:       "procq counters: tasks timed out, cancelled, refused as duplicates, per queue",
		Subjects:          []string{CountsPrefix + ".>"},
		Storage:           jetstream.FileStorage,
		AllowMsgCounter:   true,
		AllowDirect:       true,
		MaxMsgsPerSubject: 1, // a counter's last message holds its total
		Replicas:          replicas,
	}
}

// CountSubject is the subject of the counter of what on queue.
func CountSubject(what, queue string) string { return CountsPrefix + "." + what + "." + queue }

// Increment adds one to the counter of what on queue. A count the broker
// cannot store is lost, never the work: callers log the error and go on.
func Increment(ctx context.Context, js jetstream.JetStream, what, queue string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msg := &nats.Msg{Subject: CountSubject(what, queue), Header: nats.Header{}}
	msg.Header.Set("Nats-Incr", "+1")
	_, err := js.PublishMsg(ctx, msg)
	return err
}

// Counters reads every counter: what -> queue -> total. No counters (or no
// counters stream: an older broker) is an empty map.
func Counters(ctx context.Context, js jetstream.JetStream) (map[string]map[string]int64, error) {
	out := map[string]map[string]int64{}
	s, err := js.Stream(ctx, CountsStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(CountsPrefix+".>"))
	if err != nil {
		return nil, err
	}
	for subj := range info.State.Subjects {
		rest, ok := strings.CutPrefix(subj, CountsPrefix+".")
		what, queue, ok2 := strings.Cut(rest, ".")
		if !ok || !ok2 {
			continue
		}
		m, err := s.GetLastMsgForSubject(ctx, subj)
		if err != nil {
			return nil, fmt.Errorf("counter %s: %w", subj, err)
		}
		var v struct {
			Val string `json:"val"`
		}
		if err := json.Unmarshal(m.Data, &v); err != nil {
			return nil, fmt.Errorf("counter %s: %w", subj, err)
		}
		n, err := strconv.ParseInt(v.Val, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("counter %s: %q: %w", subj, v.Val, err)
		}
		if out[what] == nil {
			out[what] = map[string]int64{}
		}
		out[what][queue] = n
	}
	return out, nil
}

// CancelledText is the error of a cancelled task's input in its answer.
const CancelledText = "task cancelled"
