package link

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// What a client waits for once a node of a cluster died: not a clock, but
// the cluster saying it can serve again. Each raft group (the meta leader,
// a stream, a replicated consumer) whose leader died elects a new one after
// the followers' election timeout (4 to 9 s in nats-server), and the new
// leader sends a LEADER_ELECTED advisory; a client whose own node died
// reconnects to another. Events turns both into one broadcast, so that a
// wait for the broker ends the moment it can succeed, with the caller's
// own timeout only as the fallback should an advisory never come (a user
// not allowed to subscribe to it, a message lost with a node).

// StreamLeaderElected is the subject of JetStream's advisory that stream
// (a wildcard: any stream) has a new leader.
func StreamLeaderElected(stream string) string {
	return "$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED." + stream
}

// ConsumerLeaderElected is the subject of JetStream's advisory that a
// consumer of stream has a new leader.
func ConsumerLeaderElected(stream, consumer string) string {
	return "$JS.EVENT.ADVISORY.CONSUMER.LEADER_ELECTED." + stream + "." + consumer
}

// Events broadcasts the cluster's news that a wait for the broker may
// end: a LEADER_ELECTED advisory on one of the watched subjects, or the
// connection re-established after it was lost. A nil *Events never
// fires: the callers' fallbacks alone then bound their waits.
type Events struct {
	nc     *nats.Conn
	subs   []*nats.Subscription
	status chan nats.Status
	done   sync.WaitGroup

	mu     sync.Mutex
	next   chan struct{} // closed at the next event
	reconn chan struct{} // closed at the next reconnect
	last   time.Time     // of the last event
}

// Watch starts watching nc's reconnects and the advisories on subjects.
// A subscription the server refuses (a user without the permission) only
// leaves the callers' fallbacks to bound their waits. Close stops it.
func Watch(nc *nats.Conn, subjects ...string) *Events {
	e := &Events{nc: nc, next: make(chan struct{}), reconn: make(chan struct{})}
	for _, s := range subjects {
		if sub, err := nc.Subscribe(s, func(*nats.Msg) { e.fire(false) }); err == nil {
			e.subs = append(e.subs, sub)
		}
	}
	// CONNECTED is reported on a reconnect only: the first connection is
	// made before this listener exists.
	e.status = nc.StatusChanged(nats.CONNECTED)
	e.done.Go(func() {
		for range e.status {
			e.fire(true)
		}
	})
	return e
}

// fire wakes every waiter of the current generation.
func (e *Events) fire(reconnect bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	close(e.next)
	e.next = make(chan struct{})
	e.last = time.Now()
	if reconnect {
		close(e.reconn)
		e.reconn = make(chan struct{})
	}
}

// Changed is a channel closed at the next event. Take it before the
// attempt whose failure would make you wait, so that an event during the
// attempt is not missed.
func (e *Events) Changed() <-chan struct{} {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.next
}

// Since reports whether there was an event after t.
func (e *Events) Since(t time.Time) bool {
	if e == nil {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last.After(t)
}

// Reconnected is a channel closed at the connection's next reconnect.
func (e *Events) Reconnected() <-chan struct{} {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.reconn
}

// Wait waits until changed is closed (see Changed), fallback has passed,
// or ctx ends (its error).
func Wait(ctx context.Context, changed <-chan struct{}, fallback time.Duration) error {
	t := time.NewTimer(fallback)
	defer t.Stop()
	select {
	case <-changed:
		return nil
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Until is a context that ends at the next event, after timeout, or with
// ctx: the bound of one attempt that an event makes pointless (a request
// sent before the cluster elected its leader is answered by no one).
func (e *Events) Until(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	changed := e.Changed()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	if changed != nil {
		go func() { // ends with ctx at the latest: the caller cancels it
			select {
			case <-changed:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	return ctx, cancel
}

// Close stops watching.
func (e *Events) Close() {
	if e == nil {
		return
	}
	for _, s := range e.subs {
		_ = s.Unsubscribe()
	}
	e.nc.RemoveStatusListener(e.status) // ends the loop over it
	e.done.Wait()
}
