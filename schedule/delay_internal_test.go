package schedule

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/protocol"
)

// A Cancel that read a delayed task's schedule message just before the
// broker fired it, and so removed it, finds the message gone: the broker
// says "sequence N not found". That is a firing, not a failure: the task's
// Cancel returns nil (its claim "cancelled" is written first, and drops
// the fired copy), an item's returns ErrFired.
func TestCancelAfterTheFiringRemovedTheSchedule(t *testing.T) {
	b := natstest.Start(t)
	js := b.JetStream(t)
	ctx := t.Context()
	topo, err := protocol.EnsureQueue(ctx, js, protocol.QueueConfig{Name: "q1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, target string
		want         error
	}{
		{"a task", protocol.WorkSubject("q1", "R"), nil},
		{"a message-queue item", protocol.MsgQueueSubject("jobs"), ErrFired},
	} {
		// Neighbours before and after it, so that the removed message is
		// inside the stream, as it is among other schedules.
		var d *Delayed
		for i := range 3 {
			m := nats.NewMsg(tt.target)
			m.Header.Set(protocol.HeaderKind, "k")
			if dd := Delay(m, time.Now().Add(time.Hour)); i == 1 {
				d = dd
			}
			if _, err := js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		sm, err := topo.Sched.GetLastMsgForSubject(ctx, d.Subject)
		if err != nil {
			t.Fatal(err)
		}
		if err := topo.Sched.DeleteMsg(ctx, sm.Sequence); err != nil { // what the firing does
			t.Fatal(err)
		}
		if err := cancel(ctx, js, topo.Sched, d.Subject, sm.Sequence); !errors.Is(err, tt.want) {
			t.Errorf("%s: cancel after the firing removed its schedule: %v, want %v", tt.name, err, tt.want)
		}
	}
}
