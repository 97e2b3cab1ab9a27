package protocol_test

import (
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/protocol"
)

// A task stream declared before tasks in time is brought up to date in
// place: it gains its source of firings, keeps its messages, and the
// schedules' stream and the claims' bucket are created.
func TestEnsureQueueAddsScheduleSource(t *testing.T) {
	b := natstest.Start(t)
	js := b.JetStream(t)
	ctx := t.Context()
	old, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: protocol.TasksStream, Description: "procq work queues", Subjects: []string{protocol.TasksPrefix + ".>"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Discard: jetstream.DiscardNew,
		MaxMsgs: protocol.DefaultMaxMessages,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, protocol.WorkSubject("up", "R"), []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	topo, err := protocol.EnsureQueue(ctx, js, protocol.QueueConfig{Name: "up"})
	if err != nil {
		t.Fatal(err)
	}
	if topo.Sched == nil || topo.Fired == nil {
		t.Fatalf("no PROCQ_SCHED or PROCQ_FIRED on nats-server %s", js.Conn().ConnectedServerVersion())
	}
	info, err := topo.Tasks.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Config.Sources) != 1 || info.Config.Sources[0].Name != protocol.SchedStream ||
		len(info.Config.Sources[0].SubjectTransforms) != 1 ||
		info.Config.Sources[0].SubjectTransforms[0] != protocol.TasksSource().SubjectTransforms[0] {
		t.Errorf("task stream's sources: %+v", info.Config.Sources)
	}
	if info.State.Msgs != 1 || old.CachedInfo().Config.Name != protocol.TasksStream {
		t.Errorf("the task stream holds %d messages after the update, want the 1 it had", info.State.Msgs)
	}
	// Declaring again changes nothing.
	if _, err := protocol.EnsureQueue(ctx, js, protocol.QueueConfig{Name: "up"}); err != nil {
		t.Fatal(err)
	}
	sched, err := topo.Sched.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !sched.Config.AllowMsgSchedules || sched.Config.Discard != jetstream.DiscardOld ||
		sched.Config.Retention != jetstream.WorkQueuePolicy {
		t.Errorf("PROCQ_SCHED's shape: %+v", sched.Config)
	}
}

// Declaring a queue with another lease (its durable updated) keeps a
// pause: a process started during broker queue pause does not end it.
func TestEnsureQueueKeepsPause(t *testing.T) {
	b := natstest.Start(t)
	js := b.JetStream(t)
	ctx := t.Context()
	if _, err := protocol.EnsureQueue(ctx, js, protocol.QueueConfig{Name: "p", AckWait: 4 * time.Second}); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(time.Hour)
	if _, err := js.PauseConsumer(ctx, protocol.TasksStream, protocol.DurableName("p"), until); err != nil {
		t.Fatal(err)
	}
	topo, err := protocol.EnsureQueue(ctx, js, protocol.QueueConfig{Name: "p", AckWait: 7 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	info, err := topo.Consumer.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.AckWait != 7*time.Second || !info.Paused || info.PauseRemaining < 59*time.Minute {
		t.Errorf("after the update: ack_wait %v, paused %v for %v; want 7s, paused for about an hour",
			info.Config.AckWait, info.Paused, info.PauseRemaining)
	}
	// The other priorities' durables, updated after it, are paused with it.
	for _, p := range []protocol.Priority{protocol.PriorityHigh, protocol.PriorityLow} {
		info, err := topo.Levels[p.Rank()].Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Config.AckWait != 7*time.Second || !info.Paused || info.PauseRemaining < 59*time.Minute {
			t.Errorf("%s durable after the update: ack_wait %v, paused %v for %v; want 7s, paused for about an hour",
				p, info.Config.AckWait, info.Paused, info.PauseRemaining)
		}
	}
}

// A queue declared before priorities (one durable on every subject of the
// queue) gains its levels in place: the default durable keeps its name,
// its position and the work it held, and gives up the other levels'
// subjects to their own durables.
func TestEnsureQueueAddsPriorityLevels(t *testing.T) {
	b := natstest.Start(t)
	js := b.JetStream(t)
	ctx := t.Context()
	tasks, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: protocol.TasksStream, Subjects: []string{protocol.TasksPrefix + ".>"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tasks.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: protocol.DurableName("up"), FilterSubject: protocol.QueueFilter("up"), AckPolicy: jetstream.AckExplicitPolicy,
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := js.Publish(ctx, protocol.WorkSubject("up", "R"), []byte{'0' + byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	topo, err := protocol.EnsureQueue(ctx, js, protocol.QueueConfig{Name: "up"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[protocol.Priority][]string{
		protocol.PriorityHigh:    {"procq.tasks.up.high.>"},
		protocol.PriorityDefault: {"procq.tasks.up.work.>", "procq.tasks.up.sentinel"},
		protocol.PriorityLow:     {"procq.tasks.up.low.>"},
	}
	for _, p := range protocol.Priorities() {
		c := topo.Levels[p.Rank()]
		if c == nil {
			t.Fatalf("no %s durable", p)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Name != protocol.LevelDurable("up", p) || !slices.Equal(info.Config.FilterSubjects, want[p]) {
			t.Errorf("%s durable %s filters %q, want %s %q", p, info.Name, info.Config.FilterSubjects,
				protocol.LevelDurable("up", p), want[p])
		}
		if p == protocol.PriorityDefault && info.NumPending != 3 {
			t.Errorf("the default durable has %d pending after the update, want the 3 it had", info.NumPending)
		}
	}
	if topo.Consumer != topo.Levels[protocol.DefaultRank] {
		t.Error("Topology.Consumer is not the default level's durable")
	}
	// Each level's work goes to its durable only.
	for _, p := range []protocol.Priority{protocol.PriorityHigh, protocol.PriorityLow} {
		if _, err := js.Publish(ctx, protocol.LevelSubject("up", "R", p), []byte(p)); err != nil {
			t.Fatal(err)
		}
		// Fetch, not FetchNoWait: the durable sees a stored message a
		// moment after the publish returns.
		batch, err := topo.Levels[p.Rank()].Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for m := range batch.Messages() {
			got = append(got, m.Subject())
			_ = m.Ack()
		}
		if len(got) != 1 || got[0] != "procq.tasks.up."+string(p)+".R" {
			t.Errorf("%s durable delivered %q", p, got)
		}
	}
	// A process that may only look the queue up finds every level.
	found, err := protocol.LookupQueue(ctx, js, "up")
	if err != nil {
		t.Fatal(err)
	}
	for r, c := range found.Levels {
		if c == nil || c.CachedInfo().Name != topo.Levels[r].CachedInfo().Name {
			t.Errorf("LookupQueue's level %d: %v", r, c)
		}
	}
}

// A task stream that sources its firings through nats-server's own
// consumer (procq before durable sourcing) is declared again with its
// durable source consumer: firings reach it through that consumer, and
// leave PROCQ_SCHED once stored.
func TestEnsureQueueSourcesThroughItsDurable(t *testing.T) {
	b := natstest.Start(t)
	js := b.JetStream(t)
	ctx := t.Context()
	if _, err := protocol.EnsureSched(ctx, js, 1, nil); err != nil {
		t.Fatal(err)
	}
	src := *protocol.TasksSource()
	src.Consumer = nil
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: protocol.TasksStream, Description: "procq work queues", Subjects: []string{protocol.TasksPrefix + ".>"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Discard: jetstream.DiscardNew,
		MaxMsgs: protocol.DefaultMaxMessages, Sources: []*jetstream.StreamSource{&src},
	}); err != nil {
		t.Fatal(err)
	}
	topo, err := protocol.EnsureQueue(ctx, js, protocol.QueueConfig{Name: "up"})
	if err != nil {
		t.Fatal(err)
	}
	info, err := topo.Tasks.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s := info.Config.Sources; len(s) != 1 || s[0].Consumer == nil || s[0].Consumer.Name != protocol.SourceDurable(protocol.TasksStream) {
		t.Fatalf("task stream's sources: %+v, want PROCQ_SCHED through %s", s, protocol.SourceDurable(protocol.TasksStream))
	}
	c, err := topo.Sched.PushConsumer(ctx, protocol.SourceDurable(protocol.TasksStream))
	if err != nil {
		t.Fatal(err)
	}
	if cfg := c.CachedInfo().Config; cfg.AckPolicy != jetstream.AckFlowControlPolicy || cfg.FilterSubject != protocol.TasksSource().SubjectTransforms[0].Source {
		t.Errorf("source consumer: ack %v filter %q", cfg.AckPolicy, cfg.FilterSubject)
	}
	if _, err := js.Publish(ctx, protocol.FireSubject(protocol.WorkSubject("up", "R")), []byte(`"fired"`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		tasks, _ := topo.Tasks.Info(ctx)
		sched, _ := topo.Sched.Info(ctx)
		if tasks != nil && sched != nil && tasks.State.Msgs == 1 && sched.State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the firing not moved from PROCQ_SCHED to the task stream within 20s: %+v, %+v", tasks, sched)
		}
		time.Sleep(50 * time.Millisecond)
	}
	m, err := topo.Tasks.GetLastMsgForSubject(ctx, protocol.WorkSubject("up", "R"))
	if err != nil || string(m.Data) != `"fired"` {
		t.Errorf("the task stream's firing: %v %v", m, err)
	}
	// nats-server's own consumer of the old source is gone.
	var names []string
	for n := range topo.Sched.ConsumerNames(ctx).Name() {
		names = append(names, n)
	}
	if !slices.Equal(names, []string{protocol.SourceDurable(protocol.TasksStream)}) {
		t.Errorf("PROCQ_SCHED's consumers: %q, want the durable source consumer alone", names)
	}
}
