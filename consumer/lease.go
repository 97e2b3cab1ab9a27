package consumer

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/procq/procq/internal/flushw"
	"github.com/procq/procq/protocol"
)

// leases holds every message the worker has received and not yet settled:
// queued for a slot, running, or finished with its result waiting to be
// stored. One goroutine keeps all their leases alive with InProgress, so a
// short ack wait redelivers quickly the work of a consumer that died, while
// nothing a live consumer holds is ever redelivered.
//
// Where the worker was given a holds writer (a spawned consumer's pipe to
// its producer), it reports each message it takes ("+<ack subject>") and
// settles ("-<ack subject>"), so that the producer, which sees its child die
// at once, hands that child's messages back without waiting for the lease.
// The lines are buffered, at most holdsDelay: two writes per task were a
// fifth of a consumer's CPU on tiny tasks. A child that dies within
// holdsDelay of taking a message leaves that message to its lease.
type leases struct {
	every time.Duration
	log   *slog.Logger

	mu   sync.Mutex
	held map[string]jetstream.Msg // by ack subject
	rep  *flushw.Writer
	line []byte // report's buffer
}

func newLeases(ackWait time.Duration, holds io.Writer, log *slog.Logger) *leases {
	l := &leases{every: max(ackWait/3, 100*time.Millisecond), log: log, held: make(map[string]jetstream.Msg)}
	if holds != nil {
		l.rep = flushw.New(holds, holdsDelay)
	}
	return l
}

// holdsDelay is how long a report to the producer may wait in the buffer.
const holdsDelay = 20 * time.Millisecond

// flush writes out the reports buffered.
func (l *leases) flush() {
	if l.rep != nil {
		_ = l.rep.Flush()
	}
}

// hold starts keeping msg's lease.
func (l *leases) hold(msg jetstream.Msg) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held[msg.Reply()] = msg
	l.report(protocol.Hold{Taken: true, Subject: msg.Reply()})
}

// release stops keeping msg's lease: it was acked, handed back or
// terminated.
func (l *leases) release(msg jetstream.Msg) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.held, msg.Reply())
	l.report(protocol.Hold{Subject: msg.Reply()})
}

// report writes one line to the producer; a failed write (the producer is
// gone) only loses a shortcut, never a message.
func (l *leases) report(h protocol.Hold) {
	if l.rep == nil {
		return
	}
	l.line = protocol.AppendHold(l.line[:0], h)
	_, _ = l.rep.Write(l.line)
}

// keep sends InProgress for every held message every third of the ack
// wait until ctx ends.
func (l *leases) keep(ctx context.Context) {
	t := time.NewTicker(l.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		msgs := make([]jetstream.Msg, 0, len(l.held))
		for _, m := range l.held {
			msgs = append(msgs, m)
		}
		l.mu.Unlock()
		for _, m := range msgs {
			if err := m.InProgress(); err != nil {
				l.log.WarnContext(ctx, "lease heartbeat failed", "error", err)
				break // the connection is down; the next tick tries again
			}
		}
	}
}
