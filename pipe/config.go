package pipe

import (
	"cmp"
	"fmt"
	"time"

	"github.com/procq/procq/protocol"
)

// End names one end of a pipe. A pipe is duplex, so the two ends are equal:
// A and B rather than sender and receiver.
type End string

// The two ends of every pipe.
const (
	A End = "a"
	B End = "b"
)

// Peer is the other end.
func (e End) Peer() End {
	if e == A {
		return B
	}
	return A
}

func (e End) valid() error {
	if e != A && e != B {
		return fmt.Errorf("pipe end %q: want %q or %q", string(e), string(A), string(B))
	}
	return nil
}

// MinPeerTimeout is the smallest PeerTimeout Open accepts.
const MinPeerTimeout = 100 * time.Millisecond

// Config configures one end of a pipe.
type Config struct {
	// PeerTimeout is how long the peer may go without renewing its claim,
	// by the broker's clock, before Recv says it is gone (ErrPeerGone);
	// this end renews its own claim every third of it, and retries a
	// failed renewal every twelfth. Both ends should use the same value:
	// the peer is judged by the longer of its own and this one. The claim
	// of a holder that died expires after PeerTimeout rounded up to whole
	// seconds (JetStream's unit for per-key TTLs); then the end can be
	// opened again. Defaults to protocol.DefaultPeerTimeout; at least
	// MinPeerTimeout.
	PeerTimeout time.Duration
	// SendWindow is how many sent messages may wait for the broker's
	// acknowledgement at once. With 1, Send returns once the broker has
	// stored the message, so one end sends about one message per broker
	// round trip. With more, Send returns once the message is written to
	// the connection and waits only when the window is full; Flush and
	// Close wait for the rest. A publish that then fails (in practice:
	// the connection broke with messages in flight) fails this end's
	// later Send, Flush and Close, and messages sent after the failed one
	// may still reach the peer, which then misses one. Defaults to 1.
	SendWindow int
	// Replicas is the replica count of the pipes' stream and the claims'
	// bucket, at most the cluster's size (queue.replicas). Defaults to protocol.DefaultReplicas.
	Replicas int
}

func (c Config) withDefaults() Config {
	c.PeerTimeout = cmp.Or(c.PeerTimeout, protocol.DefaultPeerTimeout)
	c.SendWindow = cmp.Or(c.SendWindow, 1)
	c.Replicas = cmp.Or(c.Replicas, protocol.DefaultReplicas)
	return c
}

func (c Config) validate() error {
	if c.PeerTimeout < MinPeerTimeout {
		return fmt.Errorf("pipe peer timeout must be at least %v, got %v", MinPeerTimeout, c.PeerTimeout)
	}
	if c.SendWindow < 1 {
		return fmt.Errorf("pipe send window must be at least 1, got %d", c.SendWindow)
	}
	return nil
}

// renewEvery is how often an end renews its claim.
func (c Config) renewEvery() time.Duration { return c.PeerTimeout / 3 }

// attemptTimeout bounds one attempt to renew the claim, so that an attempt
// the broker does not answer leaves time for retries.
func (c Config) attemptTimeout() time.Duration { return c.PeerTimeout / 6 }

// retryEvery is how soon a failed renewal is tried again. A renewal
// failing once, even by timing out, leaves the claim unrenewed for at most
// renewEvery + attemptTimeout + retryEvery (7/12 of PeerTimeout) plus a
// round trip: well within the PeerTimeout the peer allows.
func (c Config) retryEvery() time.Duration { return c.PeerTimeout / 12 }

// checkEvery is how long Recv waits for a message before it looks at the
// peer's claim.
func (c Config) checkEvery() time.Duration { return c.PeerTimeout / 4 }

// leaseTTL is the server-side expiry of a claim: PeerTimeout rounded up to
// whole seconds, JetStream's unit for message TTLs.
func (c Config) leaseTTL() time.Duration {
	return max(time.Second, (c.PeerTimeout + time.Second - 1).Truncate(time.Second))
}
