package link

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// ErrBrokerLost says a client's connection to the broker is closed for
// good: the broker was unreachable for longer than the client's reconnect
// budget (broker.connect_timeout), and nats.go gave up reconnecting. No
// wait for the broker can end well after that: the client's loops end,
// and the process exits 1 so that a supervisor restarts it.
var ErrBrokerLost = errors.New("broker connection lost")

// Lost is the error of a client whose connection nc is closed for good:
// it matches ErrBrokerLost and names the broker (user info redacted), the
// budget it was given, and the last error nats.go saw.
func Lost(nc *nats.Conn) error {
	broker := Redact(strings.Join(nc.Opts.Servers, ","))
	last := nc.LastError()
	switch {
	case last == nil || errors.Is(last, nats.ErrNoServers):
		// The reconnect attempts are spaced ReconnectWait apart: that
		// many of them are connect_timeout (Connect's options).
		budget := time.Duration(nc.Opts.MaxReconnect) * nc.Opts.ReconnectWait
		if last == nil {
			last = nats.ErrConnectionClosed
		}
		return fmt.Errorf("%w: the broker at %s was unreachable for longer than broker.connect_timeout (%v): %w",
			ErrBrokerLost, broker, budget, last)
	default:
		return fmt.Errorf("%w: the broker at %s: %w", ErrBrokerLost, broker, last)
	}
}

// Closed is nil while nc is open. Once it is closed it says how: Lost
// when nats.go gave up reconnecting (the connection has the error that
// ended it), else nats.ErrConnectionClosed (closed by the program itself).
// Errors nats.go records while the link works on (a slow consumer, a
// permission refused) stay its last error: they do not make a close lost.
func Closed(nc *nats.Conn) error {
	last := nc.LastError()
	switch {
	case !nc.IsClosed():
		return nil
	case last != nil && !errors.Is(last, nats.ErrSlowConsumer) && !errors.Is(last, nats.ErrPermissionViolation):
		return Lost(nc)
	default:
		return nats.ErrConnectionClosed
	}
}

// UntilClosed is a context of ctx that ends when nc is closed, with
// Closed(nc) as its cause: what bounds work that only the broker can end
// (a map waiting for its results, a watch of the consumers), since every
// wait on a closed connection fails at once for ever. Call stop when
// done.
func UntilClosed(ctx context.Context, nc *nats.Conn) (wctx context.Context, stop func()) {
	wctx, cancel := context.WithCancelCause(ctx)
	closed := nc.StatusChanged(nats.CLOSED)
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case _, ok := <-closed:
			if ok {
				cancel(Closed(nc))
			}
		case <-wctx.Done():
		}
	}()
	if err := Closed(nc); err != nil { // closed before the listener was there
		cancel(err)
	}
	return wctx, func() {
		cancel(nil)
		nc.RemoveStatusListener(closed)
		<-done
	}
}
