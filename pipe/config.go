package pipe

import (
	"cmp"
	"fmt"
	"time"

	"github.com/procq/procq/task"
)

// End names one end of a pipe.
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

// Config configures one end.
type Config struct {
	// PeerTimeout is how long the peer may go without refreshing its claim
	// before it counts as gone; this end refreshes its own claim every third
	// of it. Defaults to 10s.
	PeerTimeout time.Duration
}

func (c Config) withDefaults() Config {
	c.PeerTimeout = cmp.Or(c.PeerTimeout, 10*time.Second)
	return c
}

// Subject is the subject an end of the named pipe publishes on.
func Subject(name string, end End) string { return task.PipePrefix + "." + name + "." + string(end) }

func claimKey(name string, end End) string { return name + "." + string(end) }
