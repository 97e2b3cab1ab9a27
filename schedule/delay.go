// Package schedule holds procq's tasks in time: delayed tasks (a task or
// a message-queue item that the broker delivers at a given time) and
// periodic schedules (a task the broker fires by cron or at an interval).
// Both are JetStream message schedules in the PROCQ_SCHED stream
// (protocol.SchedStream); the broker fires them, so no procq process has
// to be running for a schedule to fire, and with queue.replicas: 3 they
// outlive any one node.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// ErrFired says a delayed task cannot be cancelled: it has fired already
// (or was cancelled before).
var ErrFired = errors.New("the delayed task has fired already or was cancelled")

// Supported returns a *protocol.ErrNoSchedules when the broker js talks to
// cannot hold schedules.
func Supported(js jetstream.JetStream) error {
	v := js.Conn().ConnectedServerVersion()
	if !protocol.SchedSupported(v) {
		return &protocol.ErrNoSchedules{Version: v}
	}
	return nil
}

// Delayed is the handle of a delayed task: a message the broker delivers
// to its subject at Due.
type Delayed struct {
	// ID is the task's id (its Procq-Task-Id header).
	ID string
	// Subject is the schedule's subject in PROCQ_SCHED.
	Subject string
	// Target is where the task goes when it fires.
	Target string
	// Due is when it fires.
	Due time.Time
}

// Delay rewrites msg, a task or item bound for msg.Subject, into a
// delayed task due at at: a one-off schedule (Nats-Schedule: @at) on its
// own subject of PROCQ_SCHED, whose firing reaches msg.Subject. msg is
// then published as usual (its Nats-Msg-Id still makes a retried publish
// store it once). A time in the past fires at once.
func Delay(msg *nats.Msg, at time.Time) *Delayed {
	d := &Delayed{ID: nuid.Next(), Target: msg.Subject, Due: at.UTC()}
	d.Subject = protocol.DelayedSubject(msg.Subject, d.ID)
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	msg.Subject = d.Subject
	msg.Header.Set(protocol.HeaderSchedulePattern, protocol.ScheduleAt(d.Due))
	msg.Header.Set(protocol.HeaderScheduleTarget, protocol.FireSubject(d.Target))
	msg.Header.Set(protocol.HeaderTaskID, d.ID)
	msg.Header.Set(protocol.HeaderDue, d.Due.Format(time.RFC3339Nano))
	return d
}

// Cancel removes the delayed task before it fires; ErrFired when it has
// fired already. A Cancel that races the firing by milliseconds may
// return ErrFired although the task was not run yet: it will run.
func (d *Delayed) Cancel(ctx context.Context, js jetstream.JetStream) error {
	return Cancel(ctx, js, d.Subject)
}

// Cancel removes the delayed task on subject (Delayed.Subject).
func Cancel(ctx context.Context, js jetstream.JetStream, subject string) error {
	s, err := js.Stream(ctx, protocol.SchedStream)
	if err != nil {
		return fmt.Errorf("cancel: %w", err)
	}
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return ErrFired
	}
	if err != nil {
		return fmt.Errorf("cancel: %w", err)
	}
	return cancel(ctx, js, s, subject, m.Sequence)
}

// cancel removes the schedule message at seq on subject. A task's firing
// may be on its way while its schedule goes (the broker fires a batch
// after reading it): first a claim "cancelled" under the firing's id, so
// that any copy of it reaching the queue is dropped; a claim already
// there means a consumer took it, and it is ErrFired. A message-queue
// item has no claims: a Cancel that races its firing by milliseconds may
// return nil and the item join the queue.
func cancel(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, subject string, seq uint64) error {
	target := protocol.DelayedTarget(subject)
	tombstone := false
	if strings.HasPrefix(target, protocol.TasksPrefix+".") {
		kv, err := js.KeyValue(ctx, protocol.FiredBucket)
		if err != nil {
			return fmt.Errorf("cancel: %w", err)
		}
		_, err = kv.Create(ctx, protocol.FiredKey(QueueOf(target), protocol.DelayedID(subject)), []byte(protocol.CancelledClaim))
		if errors.Is(err, jetstream.ErrKeyExists) {
			return ErrFired
		}
		if err != nil {
			return fmt.Errorf("cancel: %w", err)
		}
		tombstone = true
	}
	err := remove(ctx, s, seq)
	if errors.Is(err, ErrFired) && tombstone {
		err = nil // fired, not taken: its copy finds the claim and is dropped
	}
	if err == nil && strings.HasPrefix(target, protocol.TasksPrefix+".") {
		// Counted; a count lost is only a count.
		_ = protocol.Increment(ctx, js, protocol.CountCancelled, QueueOf(target))
	}
	return err
}

// remove deletes the schedule message at seq: ErrFired when it is gone.
// The broker says so two ways: "no message found" for a sequence below the
// stream's first, and "sequence N not found" (error code 10043) for one
// removed from among others, as a firing removes its schedule.
func remove(ctx context.Context, s jetstream.Stream, seq uint64) error {
	if err := s.DeleteMsg(ctx, seq); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) || strings.Contains(err.Error(), "no message found") ||
			strings.Contains(err.Error(), fmt.Sprintf("err_code=%d ", errCodeSequenceNotFound)) {
			return ErrFired
		}
		return fmt.Errorf("cancel: %w", err)
	}
	return nil
}

// errCodeSequenceNotFound is JetStream's error code for a message delete
// of a sequence the stream no longer holds. DeleteMsg hands the broker's
// error on as text only.
const errCodeSequenceNotFound = 10043

// CancelID cancels the delayed task with the given id, wherever it goes:
// the id is its subject's last token, so it is found by a read per kind
// of target, however many delayed tasks there are.
func CancelID(ctx context.Context, js jetstream.JetStream, id string) error {
	if err := task.ValidName(id); err != nil {
		return fmt.Errorf("cancel: task id: %w", err)
	}
	s, err := js.Stream(ctx, protocol.SchedStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return ErrFired
	}
	if err != nil {
		return fmt.Errorf("cancel: %w", err)
	}
	for _, f := range protocol.DelayedIDFilters(id) {
		m, err := s.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(f))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("cancel: %w", err)
		}
		return cancel(ctx, js, s, m.Subject, m.Sequence)
	}
	return ErrFired
}

// PendingTask is a delayed task that has not fired.
type PendingTask struct {
	ID      string    `json:"id"`
	Subject string    `json:"subject"`
	Target  string    `json:"target"`
	Queue   string    `json:"queue"` // the task queue or message queue it goes to
	Kind    string    `json:"kind,omitempty"`
	Due     time.Time `json:"due"`
}

// MaxPending bounds the delayed tasks Pending lists.
const MaxPending = 1000

// Pending lists up to MaxPending delayed tasks on subjects filter matches
// (protocol.DelayedFilter, or DelayedQueueFilter for one queue's), in
// the order they were put.
func Pending(ctx context.Context, js jetstream.JetStream, filter string) ([]PendingTask, error) {
	s, err := js.Stream(ctx, protocol.SchedStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []PendingTask
	err = scan(ctx, js, s, filter, MaxPending, func(m *jetstream.RawStreamMsg) {
		p := PendingTask{ID: protocol.DelayedID(m.Subject), Subject: m.Subject, Target: protocol.DelayedTarget(m.Subject),
			Kind: m.Header.Get(protocol.HeaderKind)}
		p.Queue = QueueOf(p.Target)
		p.Due, _ = time.Parse(time.RFC3339Nano, m.Header.Get(protocol.HeaderDue))
		if p.Due.IsZero() {
			p.Due, _ = time.Parse(time.RFC3339, strings.TrimPrefix(m.Header.Get(protocol.HeaderSchedulePattern), "@at "))
		}
		out = append(out, p)
	})
	return out, err
}

// QueueOf names the queue a target subject belongs to: a task queue's
// (procq.tasks.<queue>...) or a message queue's (procq.q.<name>).
func QueueOf(target string) string {
	for _, prefix := range []string{protocol.TasksPrefix + ".", protocol.MsgQueuePrefix + "."} {
		if rest, ok := strings.CutPrefix(target, prefix); ok {
			q, _, _ := strings.Cut(rest, ".")
			return q
		}
	}
	return ""
}
