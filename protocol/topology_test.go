package protocol_test

import (
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
}
