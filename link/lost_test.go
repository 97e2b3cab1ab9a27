package link_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/link"
)

// UntilClosed ends with the connection: with ErrBrokerLost, naming the
// broker and the budget, once nats.go gave up reconnecting; with
// nats.ErrConnectionClosed when the program closed it; at once for a
// connection closed already.
func TestUntilClosed(t *testing.T) {
	b := natstest.Start(t)
	lost, err := nats.Connect(b.URL, nats.Token(b.Token), nats.MaxReconnects(3), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer lost.Close()
	closed := b.Conn(t)
	ctx := context.Background()
	lostCtx, stopLost := link.UntilClosed(ctx, lost)
	defer stopLost()
	closedCtx, stopClosed := link.UntilClosed(ctx, closed)
	defer stopClosed()
	if link.Closed(lost) != nil || lostCtx.Err() != nil {
		t.Fatalf("an open connection is closed: %v, %v", link.Closed(lost), lostCtx.Err())
	}
	ended := func(what string, ctx context.Context) error {
		t.Helper()
		t.Logf("waiting for %s to end", what)
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not end within 10s", what)
			return nil
		}
	}
	closed.Close()
	if err := ended("the context of the connection closed on purpose", closedCtx); !errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, link.ErrBrokerLost) {
		t.Errorf("cause %v, want nats.ErrConnectionClosed", err)
	}
	b.Server.Shutdown()
	err = ended("the context of the connection whose broker went", lostCtx)
	if !errors.Is(err, link.ErrBrokerLost) {
		t.Fatalf("cause %v, want ErrBrokerLost", err)
	}
	for _, want := range []string{"the broker at " + b.URL, "for longer than broker.connect_timeout (300ms)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("cause %q does not say %q", err, want)
		}
	}
	again, stop := link.UntilClosed(ctx, lost)
	defer stop()
	if err := context.Cause(again); !errors.Is(err, link.ErrBrokerLost) {
		t.Errorf("on a connection lost already: cause %v, want ErrBrokerLost at once", err)
	}
}
