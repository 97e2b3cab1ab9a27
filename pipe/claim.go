package pipe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/procq/procq/protocol"
)

// claim is the value of an end's key in the PROCQ_PIPE_ENDS bucket.
type claim struct {
	// ID identifies the holder (one Open), so that it recognises a write
	// of its own whose acknowledgement was lost.
	ID   string `json:"id,omitempty"`
	PID  int    `json:"pid"`
	Host string `json:"host"`
	// TimeoutMS is the holder's PeerTimeout: it renews the claim every
	// third of it.
	TimeoutMS int64 `json:"peer_timeout_ms,omitempty"`
	// Closed says the holder closed the end: its end-of-file is stored.
	Closed bool `json:"closed,omitempty"`
}

func parseClaim(e jetstream.KeyValueEntry) claim {
	var c claim
	_ = json.Unmarshal(e.Value(), &c) // a foreign value reads as a live claim
	return c
}

func (c claim) String() string { return fmt.Sprintf("pid %d on %s", c.PID, c.Host) }

func (c *Conn) claimValue(closed bool) []byte {
	host, _ := os.Hostname()
	b, _ := json.Marshal(claim{ID: c.id, PID: os.Getpid(), Host: host,
		TimeoutMS: c.cfg.PeerTimeout.Milliseconds(), Closed: closed})
	return b
}

// claimEnd makes this process the holder of its end: it creates the key,
// which fails while another process holds it. An end an earlier holder
// closed is taken over, which starts the pipe afresh; an end whose holder
// died is free once its lease expired, and the pipe goes on where that
// holder left it.
func (c *Conn) claimEnd(ctx context.Context) error {
	// Read before any claim, for reset.
	last, err := c.lastSeq(ctx)
	if err != nil {
		return err
	}
	for range 3 {
		rev, err := c.kv.Create(ctx, c.key, c.claimValue(false), jetstream.KeyTTL(c.cfg.leaseTTL()))
		if err == nil {
			c.rev = rev
			return c.resetIfEnded(ctx, last)
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return err
		}
		e, err := c.kv.Get(ctx, c.key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // expired or released meanwhile
		}
		if err != nil {
			return err
		}
		if held := parseClaim(e); !held.Closed {
			return fmt.Errorf("%w: held by %v", ErrEndInUse, held)
		}
		return c.takeClosed(ctx, e.Revision(), last)
	}
	return fmt.Errorf("%w: claimed and released by others meanwhile", ErrEndInUse)
}

// takeClosed takes over an end an earlier holder closed: the pipe it was
// part of is over on this side, so a new one starts, unless the peer is
// still reading the old one.
func (c *Conn) takeClosed(ctx context.Context, rev, last uint64) error {
	peer, err := c.peerNotReading(ctx)
	if err != nil {
		return err
	}
	c.rev, err = c.putClaim(ctx, c.claimValue(false), rev, c.cfg.leaseTTL())
	if wrongLastSeq(err) {
		return fmt.Errorf("%w: taken by another process", ErrEndInUse)
	}
	if err != nil {
		return err
	}
	return c.reset(ctx, last, peer)
}

// resetIfEnded starts the pipe afresh when this end's subject ends with an
// end-of-file although its claim was gone: its holder died in Close.
func (c *Conn) resetIfEnded(ctx context.Context, last uint64) error {
	m, err := c.stream.GetLastMsgForSubject(ctx, c.subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if m.Header.Get(protocol.HeaderPipe) != protocol.PipeEOF {
		return nil
	}
	peer, err := c.peerNotReading(ctx)
	if err != nil {
		return err
	}
	return c.reset(ctx, last, peer)
}

// peerNotReading returns the peer's claim (nil if it has none) and fails
// if the peer holds its end: it is still reading the pipe this end closed.
func (c *Conn) peerNotReading(ctx context.Context) (jetstream.KeyValueEntry, error) {
	peer, err := c.kv.Get(ctx, c.peerKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if p := parseClaim(peer); !p.Closed {
		return nil, fmt.Errorf("%w: closed by an earlier holder, and its peer (%v) is still reading", ErrEndInUse, p)
	}
	return peer, nil
}

// reset removes what an ended pipe of this name left: its messages up to
// sequence last, and the peer's closed claim. A new peer's messages are
// safe: last was read before the claims, so a peer that sent anything up to
// last had claimed its end when peerNotReading looked, and Open would have
// been refused.
func (c *Conn) reset(ctx context.Context, last uint64, peer jetstream.KeyValueEntry) error {
	if err := c.remove(ctx, last, peer); err != nil {
		return fmt.Errorf("remove the ended pipe: %w", err)
	}
	c.log.InfoContext(ctx, "pipe started afresh: the pipe of this name had ended")
	return nil
}

// putClaim writes the claim if rev is still its revision, with ttl (0 for
// none) as its expiry. The KV API's Update cannot set a TTL.
func (c *Conn) putClaim(ctx context.Context, value []byte, rev uint64, ttl time.Duration) (uint64, error) {
	put := func(ctx context.Context) (uint64, error) {
		opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(rev)}
		if ttl > 0 {
			opts = append(opts, jetstream.WithMsgTTL(ttl))
		}
		ack, err := c.js.PublishMsg(ctx, &nats.Msg{Subject: claimSubject(c.key), Data: value}, opts...)
		if err != nil {
			return 0, err
		}
		return ack.Sequence, nil
	}
	if c.hooks.put != nil {
		return c.hooks.put(ctx, put)
	}
	return put(ctx)
}

// claimSubject is the subject of key's values in the claims' stream.
func claimSubject(key string) string { return "$KV." + protocol.PipeEndsBucket + "." + key }

func wrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// keepLease renews the claim every third of PeerTimeout until ctx ends:
// the lease that keeps the end this process's, and the heartbeat the peer
// watches. A renewal that fails is tried again every twelfth of
// PeerTimeout for as long as it fails: a timeout, a lost answer or a
// broker error says nothing about the claim, which may well have been
// renewed. Only the broker saying that the claim is gone or another
// holder's (ErrLeaseLost, see writeClaim) stops it for good.
func (c *Conn) keepLease(ctx context.Context) {
	t := time.NewTimer(c.cfg.renewEvery())
	defer t.Stop()
	var failing time.Time // when the renewals began to fail; zero while they succeed
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := c.renew(ctx)
		switch {
		case err == nil:
			if !failing.IsZero() {
				c.log.InfoContext(ctx, "pipe claim renewed again", "failed_for", c.now().Sub(failing))
				failing = time.Time{}
			}
			t.Reset(c.cfg.renewEvery())
		case errors.Is(err, ErrLeaseLost):
			c.lost.Store(true)
			c.log.ErrorContext(ctx, "pipe end lost: its claim expired or was taken", "error", err)
			return
		case ctx.Err() != nil:
			return
		default:
			if failing.IsZero() {
				failing = c.now()
				c.log.WarnContext(ctx, "pipe claim renewal failed; retrying", "error", err)
			}
			t.Reset(c.cfg.retryEvery())
		}
	}
}

// renew makes one attempt to renew the claim.
func (c *Conn) renew(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.attemptTimeout())
	defer cancel()
	return c.writeClaim(ctx, c.claimValue(false), c.cfg.leaseTTL())
}

// writeClaim writes value as this holder's claim with ttl (0 for none),
// on condition that the claim's revision is still the one this holder
// last wrote. How a failure is classified is what keeps a live end alive:
//
//   - No answer (a timeout, a broken connection, a broker error) says
//     nothing about the claim: the error is returned as it is, and the
//     caller tries again. The write may have been stored all the same.
//   - A revision mismatch is settled by reading the claim. Where the
//     stored claim is this holder's own (its ID), a write of its own whose
//     answer was lost or which was stored late got there first: its
//     revision is adopted and the value written again. Only a claim that
//     is gone (expired, removed) or another holder's is ErrLeaseLost.
//   - A failed read is again no answer, returned as it is.
func (c *Conn) writeClaim(ctx context.Context, value []byte, ttl time.Duration) error {
	rev, err := c.putClaim(ctx, value, c.rev, ttl)
	if wrongLastSeq(err) {
		var e jetstream.KeyValueEntry
		if e, err = c.ownClaim(ctx, err); err != nil {
			return err
		}
		rev, err = c.putClaim(ctx, value, e.Revision(), ttl)
	}
	if err != nil {
		return err
	}
	c.rev = rev
	return nil
}

// ownClaim reads this end's claim after a write was refused with mismatch,
// and fails with ErrLeaseLost if it is gone or another holder's.
func (c *Conn) ownClaim(ctx context.Context, mismatch error) (jetstream.KeyValueEntry, error) {
	e, err := c.kv.Get(ctx, c.key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, fmt.Errorf("%w: the claim is gone: %w", ErrLeaseLost, mismatch)
	case err != nil:
		return nil, err
	}
	if held := parseClaim(e); held.ID != c.id {
		return nil, fmt.Errorf("%w: the claim is held by %v", ErrLeaseLost, held)
	}
	return e, nil
}

// release gives the claim up after a failed Open.
func (c *Conn) release(ctx context.Context) {
	if c.rev == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	if err := c.purgeKey(ctx, c.key, c.rev); err != nil {
		c.log.WarnContext(ctx, "pipe claim not released; it expires with its lease", "error", err)
	}
}

// purgeKey removes key if rev is still its revision; where it is not,
// another process has claimed it meanwhile and it is left alone. The purge
// marker itself expires after protocol.PipeMarkerTTL.
func (c *Conn) purgeKey(ctx context.Context, key string, rev uint64) error {
	err := c.kv.Purge(ctx, key, jetstream.LastRevision(rev), jetstream.PurgeTTL(protocol.PipeMarkerTTL))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return nil
	}
	return err
}

// lastSeq is the stream's last sequence.
func (c *Conn) lastSeq(ctx context.Context) (uint64, error) {
	info, err := c.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

// remove purges the pipe's messages up to sequence last (a new pipe of the
// same name may already have sent more) and the peer's claim peer (nil for
// none) unless the peer's end was claimed again meanwhile.
func (c *Conn) remove(ctx context.Context, last uint64, peer jetstream.KeyValueEntry) error {
	err := c.stream.Purge(ctx, jetstream.WithPurgeSubject(protocol.PipeFilter(c.name)), jetstream.WithPurgeSequence(last+1))
	if peer != nil {
		err = errors.Join(err, c.purgeKey(ctx, c.peerKey, peer.Revision()))
	}
	return err
}
