package ops

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/schedule"
	"github.com/procq/procq/unique"
)

// Status is a snapshot of procq on one broker, read from JetStream's own
// state and the processes' heartbeats, not counted by procq: what
// "broker status", the broker's metrics and the dashboard show.
type Status struct {
	Time      time.Time           `json:"time"`
	Queues    []QueueStatus       `json:"queues"`
	Consumers []protocol.Presence `json:"consumers"`
	Runs      []RunStatus         `json:"runs"`
	Maps      []MapStatus         `json:"maps"`
	Pipes     []PipeStatus        `json:"pipes"`
	MsgQueues []MsgQueueStatus    `json:"message_queues"`
	Streams   []StreamStatus      `json:"streams"`
	Cluster   *ClusterStatus      `json:"cluster,omitempty"`
	// Schedules are the periodic schedules, with their next firing;
	// Delayed the delayed tasks and items not fired yet (the first
	// schedule.MaxPending), soonest first.
	Schedules []schedule.Entry       `json:"schedules"`
	Delayed   []schedule.PendingTask `json:"delayed"`
}

// QueueStatus is one task queue.
type QueueStatus struct {
	Name string `json:"name"`
	// Pending tasks not yet delivered, InFlight delivered and not yet
	// settled, Redelivered among those delivered more than once, Waiting
	// pull requests (idle consumers), Dead letters kept.
	Pending     uint64 `json:"pending"`
	InFlight    int    `json:"in_flight"`
	Redelivered int    `json:"redelivered"`
	Waiting     int    `json:"waiting_pulls"`
	Dead        uint64 `json:"dead_letters"`
	// OldestAge is how long the oldest unfinished task has been queued
	// (0: none).
	OldestAge time.Duration `json:"oldest_age"`
	// Consumers alive, and the task messages they ran in the last minute.
	Consumers  int   `json:"consumers"`
	LastMinute int64 `json:"last_minute"`
	// Scheduled counts its delayed tasks not fired yet.
	Scheduled uint64 `json:"scheduled"`
	// PausedUntil is set while the queue is paused (PauseQueue).
	PausedUntil *time.Time `json:"paused_until,omitempty"`
	// UniqueKeys counts the unique keys its tasks hold (procq.Unique).
	UniqueKeys int `json:"unique_keys"`
	// What the controls over each task did, ever (protocol.CountsStream):
	// tasks stopped at their time limit, tasks cancelled, unique puts
	// refused as duplicates.
	TimedOut   int64 `json:"timed_out"`
	Cancelled  int64 `json:"cancelled"`
	Duplicates int64 `json:"duplicates"`
	// Priorities splits Pending and InFlight by priority, highest first:
	// one entry per level the queue has.
	Priorities []PriorityStatus `json:"priorities"`
}

// PriorityStatus is one priority of a queue: its tasks queued and not
// yet delivered, and delivered and not yet settled (the default level's
// count its sentinels too).
type PriorityStatus struct {
	Priority protocol.Priority `json:"priority"`
	Pending  uint64            `json:"pending"`
	InFlight int               `json:"in_flight"`
}

// Prioritised reports whether the queue holds a task of a level other
// than the default.
func (q QueueStatus) Prioritised() bool {
	for _, l := range q.Priorities {
		if l.Priority != protocol.PriorityDefault && l.Pending+uint64(l.InFlight) > 0 {
			return true
		}
	}
	return false
}

// RunStatus is a queue's current run (protocol.RunRecord).
type RunStatus struct {
	Queue string `json:"queue"`
	protocol.RunRecord
}

// MapStatus is a running map (its lease).
type MapStatus struct {
	Queue string `json:"queue"`
	ID    string `json:"id"`
	protocol.MapLease
}

// PipeStatus is a pipe with an end open.
type PipeStatus struct {
	Name string   `json:"name"`
	Ends []string `json:"ends"`
}

// MsgQueueStatus is a message queue (package msgq): the items it holds,
// and its bound (0: none).
type MsgQueueStatus struct {
	Name    string `json:"name"`
	Items   uint64 `json:"items"`
	MaxSize int64  `json:"maxsize"`
	// Scheduled counts its delayed items not joined yet.
	Scheduled uint64 `json:"scheduled"`
	// UniqueKeys counts the unique keys its items hold (put --unique),
	// Duplicates the unique puts refused, ever.
	UniqueKeys int   `json:"unique_keys"`
	Duplicates int64 `json:"duplicates"`
}

// StreamStatus is one of procq's streams.
type StreamStatus struct {
	Name      string   `json:"name"`
	Messages  uint64   `json:"messages"`
	Bytes     uint64   `json:"bytes"`
	Consumers int      `json:"consumers"`
	Leader    string   `json:"leader,omitempty"`
	Replicas  int      `json:"replicas"`
	Current   int      `json:"current"` // replicas up to date, the leader included
	Lagging   []string `json:"lagging,omitempty"`
}

// ClusterStatus is the cluster the client is connected to.
type ClusterStatus struct {
	Name        string   `json:"name"`
	Nodes       []string `json:"nodes"`
	ConnectedTo string   `json:"connected_to"`
}

// Snapshot reads the status. A stream or bucket that does not exist yet
// is left out; any other error fails it.
func Snapshot(ctx context.Context, js jetstream.JetStream) (*Status, error) {
	st := &Status{Time: time.Now().UTC(), Queues: []QueueStatus{}, Consumers: []protocol.Presence{},
		Runs: []RunStatus{}, Maps: []MapStatus{}, Pipes: []PipeStatus{}, MsgQueues: []MsgQueueStatus{}, Streams: []StreamStatus{},
		Schedules: []schedule.Entry{}, Delayed: []schedule.PendingTask{}}
	nodes := map[string]bool{}
	nc := js.Conn()
	if name := nc.ConnectedServerName(); name != "" {
		nodes[name] = true
	}
	for _, name := range protocol.Streams() {
		s, err := js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		st.Streams = append(st.Streams, streamStatus(s.CachedInfo(), nodes))
	}
	if err := st.readMsgQueues(ctx, js, nodes); err != nil {
		return nil, err
	}
	if err := st.readPresence(ctx, js); err != nil {
		return nil, err
	}
	if err := st.readRuns(ctx, js); err != nil {
		return nil, err
	}
	if err := st.readQueues(ctx, js); err != nil {
		return nil, err
	}
	if err := st.readPipes(ctx, js); err != nil {
		return nil, err
	}
	if err := st.readSchedules(ctx, js); err != nil {
		return nil, err
	}
	if err := st.readUnique(ctx, js); err != nil {
		return nil, err
	}
	if err := st.readCounters(ctx, js); err != nil {
		return nil, err
	}
	if cluster := nc.ConnectedClusterName(); cluster != "" {
		st.Cluster = &ClusterStatus{Name: cluster, ConnectedTo: nc.ConnectedServerName()}
		for n := range nodes {
			st.Cluster.Nodes = append(st.Cluster.Nodes, n)
		}
		slices.Sort(st.Cluster.Nodes)
	}
	return st, nil
}

func streamStatus(info *jetstream.StreamInfo, nodes map[string]bool) StreamStatus {
	ss := StreamStatus{Name: info.Config.Name, Messages: info.State.Msgs, Bytes: info.State.Bytes,
		Consumers: info.State.Consumers, Replicas: max(info.Config.Replicas, 1), Current: 1}
	ci := info.Cluster
	if ci == nil {
		return ss
	}
	if ci.Leader == "" {
		ss.Current = 0
		return ss
	}
	ss.Leader = ci.Leader
	nodes[ci.Leader] = true
	for _, p := range ci.Replicas {
		nodes[p.Name] = true
		if p.Current && !p.Offline {
			ss.Current++
		} else {
			ss.Lagging = append(ss.Lagging, p.Name)
		}
	}
	return ss
}

// bucket returns the named key-value bucket, or nil when it does not exist.
func bucket(ctx context.Context, js jetstream.JetStream, name string) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	return kv, err
}

// values calls fn with every live key and value of kv. The key lister is
// stopped and drained however it returns, and a listing cut short by ctx
// is an error, not a short answer.
func values(ctx context.Context, kv jetstream.KeyValue, fn func(key string, val []byte)) error {
	if kv == nil {
		return nil
	}
	lctx, cancel := context.WithCancel(ctx)
	lister, err := kv.ListKeys(lctx)
	if err != nil {
		cancel()
		return err
	}
	defer func() {
		cancel()
		for range lister.Keys() { // let the lister's goroutine end
		}
	}()
	for key := range lister.Keys() {
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // gone meanwhile
		}
		if err != nil {
			return err
		}
		fn(key, e.Value())
	}
	return ctx.Err()
}

func (st *Status) readPresence(ctx context.Context, js jetstream.JetStream) error {
	kv, err := bucket(ctx, js, protocol.ConsumersBucket)
	if err != nil {
		return err
	}
	err = values(ctx, kv, func(_ string, val []byte) {
		var p protocol.Presence
		if json.Unmarshal(val, &p) == nil {
			st.Consumers = append(st.Consumers, p)
		}
	})
	slices.SortFunc(st.Consumers, func(a, b protocol.Presence) int {
		return cmp.Or(strings.Compare(a.Queue, b.Queue), strings.Compare(a.Name, b.Name))
	})
	return err
}

func (st *Status) readRuns(ctx context.Context, js jetstream.JetStream) error {
	kv, err := bucket(ctx, js, protocol.RunsBucket)
	if err != nil {
		return err
	}
	return values(ctx, kv, func(key string, val []byte) {
		if queue, id, ok := protocol.ParseMapLeaseKey(key); ok {
			var l protocol.MapLease
			if json.Unmarshal(val, &l) == nil {
				st.Maps = append(st.Maps, MapStatus{Queue: queue, ID: id, MapLease: l})
			}
			return
		}
		var r protocol.RunRecord
		if json.Unmarshal(val, &r) == nil && r.Run != "" {
			st.Runs = append(st.Runs, RunStatus{Queue: key, RunRecord: r})
		}
	})
}

func (st *Status) readQueues(ctx context.Context, js jetstream.JetStream) error {
	tasks, err := js.Stream(ctx, protocol.TasksStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	dead := map[string]uint64{}
	if ds, err := js.Stream(ctx, protocol.DeadStream); err == nil {
		info, err := ds.Info(ctx, jetstream.WithSubjectFilter(protocol.DeadPrefix+".>"))
		if err != nil {
			return err
		}
		for subj, n := range info.State.Subjects {
			dead[strings.TrimPrefix(subj, protocol.DeadPrefix+".")] = n
		}
	}
	first := tasks.CachedInfo().State.FirstSeq
	// A queue is its durables, one per priority: the counts add up, and an
	// idle consumer waits on each, so its waiting pulls are the most of any
	// level's.
	byName := map[string]*QueueStatus{}
	consumers := tasks.ListConsumers(ctx)
	for ci := range consumers.Info() {
		name, level, ok := protocol.ParseDurable(ci.Name)
		if !ok {
			continue
		}
		q := byName[name]
		if q == nil {
			q = &QueueStatus{Name: name, Priorities: []PriorityStatus{}}
			byName[name] = q
		}
		q.Pending += ci.NumPending
		q.InFlight += ci.NumAckPending
		q.Redelivered += ci.NumRedelivered
		q.Waiting = max(q.Waiting, ci.NumWaiting)
		q.Priorities = append(q.Priorities, PriorityStatus{Priority: level, Pending: ci.NumPending, InFlight: ci.NumAckPending})
		if ci.Paused && level == protocol.PriorityDefault {
			until := st.Time.Add(ci.PauseRemaining)
			q.PausedUntil = &until
		}
	}
	for _, q := range byName {
		slices.SortFunc(q.Priorities, func(a, b PriorityStatus) int { return a.Priority.Rank() - b.Priority.Rank() })
		q.Dead = dead[q.Name]
		if q.Pending+uint64(q.InFlight) > 0 {
			m, err := tasks.GetMsg(ctx, first, jetstream.WithGetMsgSubject(protocol.WorkFilter(q.Name)))
			if err == nil {
				q.OldestAge = max(st.Time.Sub(m.Time), 0)
			}
		}
		for _, p := range st.Consumers {
			if p.Queue == q.Name {
				q.Consumers++
				q.LastMinute += p.LastMinute
			}
		}
		st.Queues = append(st.Queues, *q)
	}
	if err := consumers.Err(); err != nil {
		return fmt.Errorf("list the queues' consumers: %w", err)
	}
	slices.SortFunc(st.Queues, func(a, b QueueStatus) int { return strings.Compare(a.Name, b.Name) })
	return nil
}

// readMsgQueues lists the message queues, one stream each, among the
// streams.
func (st *Status) readMsgQueues(ctx context.Context, js jetstream.JetStream, nodes map[string]bool) error {
	streams := js.ListStreams(ctx, jetstream.WithStreamListSubject(protocol.MsgQueuePrefix+".>"))
	for info := range streams.Info() {
		name, ok := strings.CutPrefix(info.Config.Name, protocol.MsgQueueStream(""))
		if !ok {
			continue
		}
		st.MsgQueues = append(st.MsgQueues, MsgQueueStatus{Name: name, Items: info.State.Msgs, MaxSize: max(info.Config.MaxMsgs, 0)})
		ss := streamStatus(info, nodes)
		if info.Cluster == nil {
			ss.Leader = js.Conn().ConnectedServerName() // a listing leaves out a lone server's name
		}
		st.Streams = append(st.Streams, ss)
	}
	if err := streams.Err(); err != nil {
		return fmt.Errorf("list the message queues: %w", err)
	}
	slices.SortFunc(st.MsgQueues, func(a, b MsgQueueStatus) int { return strings.Compare(a.Name, b.Name) })
	return nil
}

func (st *Status) readPipes(ctx context.Context, js jetstream.JetStream) error {
	kv, err := bucket(ctx, js, protocol.PipeEndsBucket)
	if err != nil {
		return err
	}
	ends := map[string][]string{}
	err = values(ctx, kv, func(key string, _ []byte) {
		if name, end, ok := strings.Cut(key, "."); ok {
			ends[name] = append(ends[name], end)
		}
	})
	for name, e := range ends {
		slices.Sort(e)
		st.Pipes = append(st.Pipes, PipeStatus{Name: name, Ends: e})
	}
	slices.SortFunc(st.Pipes, func(a, b PipeStatus) int { return strings.Compare(a.Name, b.Name) })
	return err
}

// readSchedules reads the periodic schedules, the delayed tasks and each
// queue's count of them.
func (st *Status) readSchedules(ctx context.Context, js jetstream.JetStream) error {
	sched, err := js.Stream(ctx, protocol.SchedStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Schedules, err = schedule.List(ctx, js, st.Time); err != nil {
		return fmt.Errorf("schedules: %w", err)
	}
	if st.Delayed, err = schedule.Pending(ctx, js, protocol.DelayedFilter); err != nil {
		return fmt.Errorf("delayed tasks: %w", err)
	}
	if st.Schedules == nil {
		st.Schedules = []schedule.Entry{}
	}
	if st.Delayed == nil {
		st.Delayed = []schedule.PendingTask{}
	}
	slices.SortStableFunc(st.Delayed, func(a, b schedule.PendingTask) int { return a.Due.Compare(b.Due) })
	info, err := sched.Info(ctx, jetstream.WithSubjectFilter(protocol.DelayedFilter))
	if err != nil {
		return fmt.Errorf("delayed tasks: %w", err)
	}
	tasks, items := map[string]uint64{}, map[string]uint64{}
	for subj, n := range info.State.Subjects {
		target := protocol.DelayedTarget(subj)
		if strings.HasPrefix(target, protocol.TasksPrefix+".") {
			tasks[schedule.QueueOf(target)] += n
		} else {
			items[schedule.QueueOf(target)] += n
		}
	}
	for i := range st.Queues {
		st.Queues[i].Scheduled = tasks[st.Queues[i].Name]
	}
	for i := range st.MsgQueues {
		st.MsgQueues[i].Scheduled = items[st.MsgQueues[i].Name]
	}
	return nil
}

// readUnique counts each queue's and message queue's unique keys held;
// without their bucket among the streams read, none is.
func (st *Status) readUnique(ctx context.Context, js jetstream.JetStream) error {
	if !slices.ContainsFunc(st.Streams, func(s StreamStatus) bool { return s.Name == "KV_"+protocol.UniqueBucket }) {
		return nil
	}
	tasks, items, err := unique.Held(ctx, js)
	if err != nil {
		return fmt.Errorf("unique keys: %w", err)
	}
	for i := range st.Queues {
		st.Queues[i].UniqueKeys = tasks[st.Queues[i].Name]
	}
	for i := range st.MsgQueues {
		st.MsgQueues[i].UniqueKeys = items[st.MsgQueues[i].Name]
	}
	return nil
}

// readCounters fills in each queue's counters.
func (st *Status) readCounters(ctx context.Context, js jetstream.JetStream) error {
	c, err := protocol.Counters(ctx, js)
	if err != nil {
		return fmt.Errorf("counters: %w", err)
	}
	for i := range st.Queues {
		q := &st.Queues[i]
		q.TimedOut = c[protocol.CountTimedOut][q.Name]
		q.Cancelled = c[protocol.CountCancelled][q.Name]
		q.Duplicates = c[protocol.CountDuplicate][q.Name]
	}
	for i := range st.MsgQueues {
		st.MsgQueues[i].Duplicates = c[protocol.CountDuplicateItem][st.MsgQueues[i].Name]
	}
	return nil
}
