package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/demo"
	"github.com/procq/procq/link"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/unique"
)

// TaskQueue puts work and sentinels on one queue.
type TaskQueue struct {
	name string
	js   jetstream.JetStream
	topo *protocol.Topology
	log  *slog.Logger

	// PutTimeout is how long Put and End wait for room in a full queue
	// (queue.max_messages) before they fail, like a bounded Python
	// Queue(maxsize).put(timeout=...). Defaults to 30s.
	PutTimeout time.Duration

	uniqueOnce sync.Once
	unique     *unique.Bucket // the unique tasks' keys (locks)
}

// NewTaskQueue returns a Queue for the queue topo was declared for.
func NewTaskQueue(name string, js jetstream.JetStream, topo *protocol.Topology, logger *slog.Logger) *TaskQueue {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &TaskQueue{name: name, js: js, topo: topo, log: logger, PutTimeout: 30 * time.Second}
}

// Name is the queue's name.
func (q *TaskQueue) Name() string { return q.name }

// Put publishes one task of run at index and waits for the stream to store
// it. The message id run.index makes a retried Put store it once.
func (q *TaskQueue) Put(ctx context.Context, run string, index int, kind string, args any) error {
	body, err := json.Marshal(args)
	if err != nil {
		return fmt.Errorf("put %s #%d: %w", kind, index, err)
	}
	msg := q.taskMsg(run, index, kind, body)
	if err := q.publish(ctx, msg); err != nil {
		return fmt.Errorf("put %s #%d: %w", kind, index, err)
	}
	return nil
}

// publish stores msg, waiting up to PutTimeout for room while the queue
// is full; a full queue never drops queued work (DiscardNew), it pushes
// back. A publish the broker did not answer (a cluster electing the
// stream's leader, a node that died with the answer) is retried within
// the same bound. Its Nats-Msg-Id makes a retried publish store it once.
func (q *TaskQueue) publish(ctx context.Context, msg *nats.Msg) error {
	var deadline time.Time
	for {
		_, err := q.js.PublishMsg(ctx, msg)
		full := isFull(err)
		if err == nil || ctx.Err() != nil || !(full || link.Transient(err)) {
			return err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(q.PutTimeout)
			if full {
				q.log.WarnContext(ctx, "queue full, waiting for room", "queue", q.name,
					"waiting_for", "consumers to take work", "timeout", q.PutTimeout)
			} else {
				q.log.WarnContext(ctx, "task not acknowledged, retrying", "queue", q.name,
					"waiting_for", "the stream's leader (election or reconnect)", "timeout", q.PutTimeout, "error", err)
			}
		}
		if time.Now().After(deadline) {
			if full {
				return &FullError{Queue: q.name, Waited: q.PutTimeout}
			}
			return fmt.Errorf("not stored within queue.put_timeout (%v): %w", q.PutTimeout, err)
		}
		if err := demo.Sleep(ctx, fullRetry); err != nil {
			return err
		}
	}
}

// fullRetry is how often a put retries while the queue is full.
const fullRetry = 100 * time.Millisecond

// errCodeStoreFailed is JetStream's error code for a publish the stream
// refused to store, e.g. "maximum messages exceeded" under DiscardNew.
const errCodeStoreFailed jetstream.ErrorCode = 10077

// isFull reports whether a publish failed because the stream is full.
func isFull(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeStoreFailed
}

func (q *TaskQueue) taskMsg(run string, index int, kind string, body []byte) *nats.Msg {
	m := &nats.Msg{Subject: protocol.WorkSubject(q.name, run), Data: body, Header: nats.Header{}}
	m.Header.Set(protocol.HeaderKind, kind)
	m.Header.Set(protocol.HeaderRun, run)
	m.Header.Set(protocol.HeaderIndex, strconv.Itoa(index))
	m.Header.Set(protocol.HeaderMsgID, protocol.MsgID(run, index))
	m.Header.Set(protocol.HeaderTaskID, protocol.TaskID(run, index))
	return m
}

// End puts n sentinels of run, one per consumer, waiting for room in a
// full queue, and records the run as closed.
func (q *TaskQueue) End(ctx context.Context, run string, n int) error {
	if err := q.putSentinels(ctx, run, n, "end"); err != nil {
		return err
	}
	rec := protocol.RunRecord{Run: run, State: protocol.RunClosed, Sentinels: n, Started: time.Now().UTC()}
	if old, err := protocol.ReadRun(ctx, q.topo.Runs, q.name); err == nil && old.Run == run {
		rec.Started = old.Started
	}
	if err := q.putRecord(ctx, rec); err != nil {
		return err
	}
	q.log.InfoContext(ctx, "sentinels put", "run", run, "sentinels", n)
	return nil
}

func (q *TaskQueue) putRecord(ctx context.Context, rec protocol.RunRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	// A put the broker did not answer (the bucket electing its leader
	// after a node died) is made again within queue.put_timeout, as a
	// task's publish is: the record is the same each time.
	var deadline time.Time
	for {
		_, err := q.topo.Runs.Put(ctx, q.name, b)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !link.Transient(err) {
			return fmt.Errorf("record run %s: %w", rec.Run, err)
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(q.PutTimeout)
			q.log.WarnContext(ctx, "run record not acknowledged, retrying", "run", rec.Run,
				"waiting_for", "the runs bucket's leader (election or reconnect)", "timeout", q.PutTimeout, "error", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("record run %s: not stored within queue.put_timeout (%v): %w", rec.Run, q.PutTimeout, err)
		}
		if err := demo.Sleep(ctx, fullRetry); err != nil {
			return err
		}
	}
}
