package producer

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/procq/procq/broker"
	"github.com/procq/procq/task"
)

// Queue puts work and sentinels on one queue.
type Queue struct {
	name string
	js   jetstream.JetStream
	topo *broker.Topology
	log  *slog.Logger
}

// NewQueue returns a Queue for the queue topo was declared for.
func NewQueue(name string, js jetstream.JetStream, topo *broker.Topology, logger *slog.Logger) *Queue {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Queue{name: name, js: js, topo: topo, log: logger}
}

// Begin opens a new run: it removes sentinels left over from earlier runs
// and records the run as the queue's current one, so that only this run's
// sentinels stop consumers. It returns the run id.
func (q *Queue) Begin(ctx context.Context) (string, error) {
	run := nuid.Next()
	if err := q.topo.Tasks.Purge(ctx, jetstream.WithPurgeSubject(task.SentinelSubject(q.name))); err != nil {
		return "", fmt.Errorf("purge stale sentinels: %w", err)
	}
	rec := task.RunRecord{Run: run, State: task.RunOpen, Started: time.Now().UTC()}
	if err := q.putRecord(ctx, rec); err != nil {
		return "", err
	}
	q.log.InfoContext(ctx, "run started", "run", run, "queue", q.name)
	return run, nil
}

// Put publishes one task of run at index and waits for the stream to store
// it. The message id run.index makes a retried Put store it once.
func (q *Queue) Put(ctx context.Context, run string, index int, kind string, args any) error {
	body, err := json.Marshal(args)
	if err != nil {
		return fmt.Errorf("put %s #%d: %w", kind, index, err)
	}
	msg := q.taskMsg(run, index, kind, body)
	if _, err := q.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("put %s #%d: %w", kind, index, err)
	}
	return nil
}

func (q *Queue) taskMsg(run string, index int, kind string, body []byte) *nats.Msg {
	m := &nats.Msg{Subject: task.WorkSubject(q.name, run), Data: body, Header: nats.Header{}}
	m.Header.Set(task.HeaderKind, kind)
	m.Header.Set(task.HeaderRun, run)
	m.Header.Set(task.HeaderIndex, strconv.Itoa(index))
	m.Header.Set(task.HeaderMsgID, task.MsgID(run, index))
	return m
}

// End puts n sentinels of run, one per consumer, and records the run as
// closed.
func (q *Queue) End(ctx context.Context, run string, n int) error {
	for i := range n {
		m := &nats.Msg{Subject: task.SentinelSubject(q.name), Header: nats.Header{}}
		m.Header.Set(task.HeaderSentinel, "1")
		m.Header.Set(task.HeaderRun, run)
		m.Header.Set(task.HeaderMsgID, run+".sentinel."+strconv.Itoa(i))
		if _, err := q.js.PublishMsg(ctx, m); err != nil {
			return fmt.Errorf("put sentinel %d: %w", i, err)
		}
	}
	rec := task.RunRecord{Run: run, State: task.RunClosed, Sentinels: n, Started: time.Now().UTC()}
	if e, err := q.topo.Runs.Get(ctx, q.name); err == nil {
		var old task.RunRecord
		if json.Unmarshal(e.Value(), &old) == nil && old.Run == run {
			rec.Started = old.Started
		}
	}
	if err := q.putRecord(ctx, rec); err != nil {
		return err
	}
	q.log.InfoContext(ctx, "sentinels put", "run", run, "sentinels", n)
	return nil
}

func (q *Queue) putRecord(ctx context.Context, rec task.RunRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if _, err := q.topo.Runs.Put(ctx, q.name, b); err != nil {
		return fmt.Errorf("record run %s: %w", rec.Run, err)
	}
	return nil
}
