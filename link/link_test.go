package link_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
