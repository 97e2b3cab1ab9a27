package link_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/link"
)

// What says only that the broker has not answered yet is transient and
// retried; what the broker refused for good is not.
func TestTransient(t *testing.T) {
	api := func(code int, errCode uint16) error {
		return fmt.Errorf("publish: %w", &jetstream.APIError{Code: code, ErrorCode: jetstream.ErrorCode(errCode)})
	}
	tests := []struct {
		err  error
		want bool
	}{
		{context.DeadlineExceeded, true},
		{nats.ErrTimeout, true},
		{jetstream.ErrNoStreamResponse, true},
		{nats.ErrNoResponders, true},
		{api(503, 10008), true},  // JetStream temporarily unavailable
		{api(409, 10158), true},  // duplicate message id is in process
		{api(503, 10023), false}, // insufficient resources: more replicas than nodes
		{api(400, 10077), false}, // maximum messages exceeded
		{errors.New("anything else"), false},
	}
	for _, tt := range tests {
		if got := link.Transient(tt.err); got != tt.want {
			t.Errorf("Transient(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// An update for one setting keeps the limits the caller left zero: a
// message queue opened without its maxsize keeps the bound it has.
func TestEnsureStreamKeepsWhatIsLeftZero(t *testing.T) {
	js := natstest.Start(t).JetStream(t)
	ctx := context.Background()
	cfg := jetstream.StreamConfig{Name: "KEEP", Subjects: []string{"keep.>"}, MaxMsgs: 5, Duplicates: time.Minute}
	if _, err := link.EnsureStream(ctx, js, cfg, nil); err != nil {
		t.Fatal(err)
	}
	cfg.MaxMsgs, cfg.Duplicates, cfg.Description = 0, 0, "changed" // the description forces an update
	s, err := link.EnsureStream(ctx, js, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := s.CachedInfo().Config
	if got.Description != "changed" || got.MaxMsgs != 5 || got.Duplicates != time.Minute {
		t.Errorf("after the update: description %q, max msgs %d, duplicates %v; want changed, 5, 1m",
			got.Description, got.MaxMsgs, got.Duplicates)
	}
}
