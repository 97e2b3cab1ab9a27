package ops

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/internal/natstest"
)

// A delete of a message that is gone already (a dead letter requeued or
// purged meanwhile) is told apart from a delete that failed.
func TestDeleteOfAGoneMessage(t *testing.T) {
	js := natstest.Start(t).JetStream(t)
	ctx := context.Background()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "G", Subjects: []string{"g"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteMsg(ctx, 1); err != nil {
		t.Fatal(err)
	}
	err = st.DeleteMsg(ctx, 1)
	if err == nil || !gone(err) {
		t.Errorf("delete of a deleted message: %v, want it told gone", err)
	}
	if err := js.DeleteStream(ctx, "G"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteMsg(ctx, 1); err == nil || gone(err) {
		t.Errorf("delete on a stream that is gone: %v, told the message gone", err)
	}
}
