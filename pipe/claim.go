package pipe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// claim is the value of an end's key in the PROCQ_PIPE_ENDS bucket.
type claim struct {
	PID    int    `json:"pid"`
	Host   string `json:"host"`
	Closed bool   `json:"closed,omitempty"`
}

// peerState is what an end knows of its peer's claim.
type peerState int

const (
	peerAbsent peerState = iota // no claim: not opened yet, or removed
	peerAlive                   // a claim refreshed within PeerTimeout
	peerStale                   // a claim not refreshed for PeerTimeout
	peerClosed                  // the peer closed its end
)

func newClaim() []byte {
	host, _ := os.Hostname()
	b, _ := json.Marshal(claim{PID: os.Getpid(), Host: host})
	return b
}

// acquire claims key: it creates it, or takes over a claim that is closed
// or stale. It returns the claim's revision.
func acquire(ctx context.Context, kv jetstream.KeyValue, key string, timeout time.Duration) (uint64, error) {
	rev, err := kv.Create(ctx, key, newClaim())
	if err == nil {
		return rev, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return 0, err
	}
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return acquire(ctx, kv, key, timeout) // removed meanwhile: try again
	}
	if err != nil {
		return 0, err
	}
	var c claim
	_ = json.Unmarshal(e.Value(), &c)
	if !c.Closed && time.Since(e.Created()) < timeout {
		return 0, fmt.Errorf("%w: held by pid %d on %s", ErrEndInUse, c.PID, c.Host)
	}
	// Closed or stale: take it over, unless another process just did.
	rev, err = kv.Update(ctx, key, newClaim(), e.Revision())
	if err != nil {
		return 0, fmt.Errorf("%w: taken over by another process", ErrEndInUse)
	}
	return rev, nil
}

// stateOf reads a claim.
func stateOf(ctx context.Context, kv jetstream.KeyValue, key string, timeout time.Duration) (peerState, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return peerAbsent, nil
	}
	if err != nil {
		return peerAbsent, err
	}
	var c claim
	_ = json.Unmarshal(e.Value(), &c)
	switch {
	case c.Closed:
		return peerClosed, nil
	case time.Since(e.Created()) >= timeout:
		return peerStale, nil
	default:
		return peerAlive, nil
	}
}
