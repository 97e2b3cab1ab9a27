package schedule_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/schedule"
)

// Pending lists every delayed task in the order put, reading batches
// (more than one batch here), and CancelID finds a task by its id alone,
// whatever its target: a run's task, a map's, a message queue's item.
func TestPendingAndCancelID(t *testing.T) {
	b := natstest.Start(t)
	js := b.JetStream(t)
	ctx := t.Context()
	topo, err := protocol.EnsureQueue(ctx, js, protocol.QueueConfig{Name: "q1"})
	if err != nil {
		t.Fatal(err)
	}
	if !topo.Sched.CachedInfo().Config.AllowDirect {
		t.Fatal("PROCQ_SCHED has no direct gets: Pending would read one message per request")
	}
	const n = 600
	due := time.Now().Add(time.Hour)
	var ids []string
	for i := range n {
		target := protocol.WorkSubject("q1", "R")
		switch i % 3 {
		case 1:
			target += ".M"
		case 2:
			target = protocol.MsgQueueSubject("jobs")
		}
		m := nats.NewMsg(target)
		m.Header.Set(protocol.HeaderKind, fmt.Sprint("k", i))
		m.Data = []byte(fmt.Sprint(i))
		d := schedule.Delay(m, due.Add(time.Duration(i)*time.Second))
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	all, err := schedule.Pending(ctx, js, protocol.DelayedFilter)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != n {
		t.Fatalf("Pending lists %d delayed tasks, want %d", len(all), n)
	}
	for i, p := range all {
		wantQueue := "q1"
		if i%3 == 2 {
			wantQueue = "jobs"
		}
		if p.ID != ids[i] || p.Kind != fmt.Sprint("k", i) || p.Queue != wantQueue ||
			!p.Due.Equal(due.Add(time.Duration(i)*time.Second).UTC()) {
			t.Fatalf("Pending[%d] = %+v, want id %s, kind k%d, queue %s", i, p, ids[i], i, wantQueue)
		}
	}
	for _, i := range []int{597, 598, 599} { // a run's, a map's, an item
		if err := schedule.CancelID(ctx, js, ids[i]); err != nil {
			t.Fatalf("CancelID of #%d: %v", i, err)
		}
		if err := schedule.CancelID(ctx, js, ids[i]); !errors.Is(err, schedule.ErrFired) {
			t.Fatalf("second CancelID of #%d: %v, want ErrFired", i, err)
		}
	}
	if err := schedule.CancelID(ctx, js, "no.such"); err == nil || errors.Is(err, schedule.ErrFired) {
		t.Errorf("CancelID of a bad id: %v, want an error naming the id", err)
	}
	left, err := schedule.Pending(ctx, js, protocol.DelayedQueueFilter("q1"))
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 * n / 3; len(left) != want-2 {
		t.Errorf("q1 has %d delayed tasks after two cancels, want %d", len(left), want-2)
	}
}
