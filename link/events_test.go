package link_test

import (
	"context"
	"testing"
	"time"

	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/link"
)

// A wait for the broker ends at the cluster's news: a LEADER_ELECTED
// advisory on a watched subject (Changed, Until), and the connection
// re-established after its server went away (Changed and Reconnected).
func TestEventsEndWaitsOnAdvisoryAndReconnect(t *testing.T) {
	srv := natstest.StartRestartable(t)
	nc, other := srv.Conn(t), srv.Conn(t)
	ev := link.Watch(nc, link.StreamLeaderElected("S"))
	defer ev.Close()
	if err := nc.Flush(); err != nil { // the subscription is in place
		t.Fatal(err)
	}
	closed := func(what string, ch <-chan struct{}, within time.Duration) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(within):
			t.Fatalf("waited %v for %s", within, what)
		}
	}

	// The advisory of the watched stream.
	changed, reconnected := ev.Changed(), ev.Reconnected()
	ctx, cancel := ev.Until(context.Background(), time.Hour)
	defer cancel()
	if err := other.Publish(link.StreamLeaderElected("S"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	closed("Changed after the advisory", changed, 10*time.Second)
	closed("Until's context after the advisory", ctx.Done(), 10*time.Second)
	if ctx.Err() != context.Canceled {
		t.Errorf("Until's context: %v, want canceled by the advisory", ctx.Err())
	}
	select {
	case <-reconnected:
		t.Errorf("Reconnected closed by an advisory")
	default:
	}
	select {
	case <-ev.Changed():
		t.Errorf("the next Changed is closed already")
	default:
	}

	// The connection re-established.
	changed = ev.Changed()
	srv.Stop()
	srv.Start()
	closed("Reconnected after the server's restart", reconnected, 20*time.Second)
	closed("Changed after the server's restart", changed, time.Second)

	// Without a watch (nil) a wait ends at its fallback only.
	var none *link.Events
	if none.Changed() != nil || none.Reconnected() != nil {
		t.Errorf("a nil Events has channels")
	}
	t0 := time.Now()
	if err := link.Wait(context.Background(), none.Changed(), 50*time.Millisecond); err != nil || time.Since(t0) < 50*time.Millisecond {
		t.Errorf("Wait without events: %v after %v, want nil after 50ms", err, time.Since(t0))
	}
}
