package pipe

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Hooks are the test seams of an end (see hooks): a local clock, and what
// stands between each claim write and the broker.
type Hooks struct {
	Now func() time.Time
	Put func(ctx context.Context, put func(context.Context) (uint64, error)) (uint64, error)
}

// OpenWithHooks is Open with the seams set before the end's goroutines
// start.
func OpenWithHooks(ctx context.Context, js jetstream.JetStream, name string, end End, cfg Config, h Hooks) (*Conn, error) {
	return openWith(ctx, js, name, end, cfg, nil, hooks{now: h.Now, put: h.Put})
}
