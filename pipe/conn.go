package pipe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/procq/procq/link"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

const (
	// trimEvery is how many messages Recv reads between purges of them.
	trimEvery = 256
	// prefetch is how many of the peer's messages the reader buffers.
	prefetch = 256
	// closeTimeout bounds Close's round trips to the broker.
	closeTimeout = 5 * time.Second
	// claimsStream is the stream behind the PROCQ_PIPE_ENDS bucket.
	claimsStream = "KV_" + protocol.PipeEndsBucket
)

// Conn is one open end of a pipe. Send, Flush and Recv may be called from
// different goroutines; concurrent calls of one of them take turns.
type Conn struct {
	name, key, peerKey, subject, peerSubject string

	end    End
	cfg    Config
	id     string // this holder's id in its claim
	log    *slog.Logger
	js     jetstream.JetStream
	stream jetstream.Stream
	kv     jetstream.KeyValue
	hooks  hooks
	cons   jetstream.Consumer
	msgs   jetstream.MessagesContext // the peer's messages, in order

	rev       uint64 // of this end's claim: Open, then keepLease, then Close
	lost      atomic.Bool
	stopLease context.CancelFunc
	wg        sync.WaitGroup

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	sendMu  sync.Mutex
	pending []jetstream.PubAckFuture // with SendWindow > 1, oldest first
	sendErr error                    // an asynchronous publish failed

	recvMu   sync.Mutex
	eof      bool
	lastRead uint64 // stream sequence of the last message read
	read     int

	seenPeer atomic.Bool   // a claim or a message of the peer was seen
	goneRev  atomic.Uint64 // revision of the peer's claim Recv found stale
}

// hooks are seams for this package's tests (export_test.go); Open leaves
// them zero.
type hooks struct {
	// now is the local clock; nil is time.Now. Liveness never reads it
	// (see checkPeer): only log durations do.
	now func() time.Time
	// put, if set, stands between each claim write and the broker: it may
	// fail the write, delay it, or make it and lose the answer.
	put func(ctx context.Context, put func(context.Context) (uint64, error)) (uint64, error)
}

// now reads the local clock.
func (c *Conn) now() time.Time {
	if c.hooks.now != nil {
		return c.hooks.now()
	}
	return time.Now()
}

// Open opens one end of the named pipe, creating the pipe's stream and
// bucket if needed, and claims the end. It fails with ErrEndInUse while
// another process holds the end.
//
// The logger is Open's one optional dependency; nil discards. It is a plain
// parameter rather than a functional option, as in broker.Start: there is
// nothing else optional to pass.
func Open(ctx context.Context, js jetstream.JetStream, name string, end End, cfg Config, logger *slog.Logger) (*Conn, error) {
	return openWith(ctx, js, name, end, cfg, logger, hooks{})
}

func openWith(ctx context.Context, js jetstream.JetStream, name string, end End, cfg Config, logger *slog.Logger, h hooks) (*Conn, error) {
	if err := task.ValidName(name); err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	if err := end.valid(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Conn{
		name: name, end: end, cfg: cfg, id: nuid.Next(), js: js,
		key:         protocol.PipeKey(name, string(end)),
		peerKey:     protocol.PipeKey(name, string(end.Peer())),
		subject:     protocol.PipeSubject(name, string(end)),
		peerSubject: protocol.PipeSubject(name, string(end.Peer())),
		log:         logger.With("pipe", name, "end", string(end)),
		hooks:       h,
	}
	if err := c.open(ctx); err != nil {
		c.release(ctx)
		return nil, fmt.Errorf("open pipe %s end %s: %w", name, end, err)
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.stopLease = cancel
	c.wg.Go(func() { c.keepLease(lctx) })
	c.log.InfoContext(ctx, "pipe end opened")
	return c, nil
}

func (c *Conn) open(ctx context.Context) error {
	if err := c.ensure(ctx); err != nil {
		return err
	}
	if err := c.claimEnd(ctx); err != nil {
		return err
	}
	cons, err := c.js.OrderedConsumer(ctx, protocol.PipesStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{c.peerSubject},
		NamePrefix:     "procq_pipe_" + c.name + "_" + string(c.end),
		// Close deletes the consumer; that of a killed process goes when
		// idle this long. An idle live reader's consumer going too is
		// harmless: the ordered consumer makes a new one where it was.
		InactiveThreshold: max(2*c.cfg.PeerTimeout, time.Second),
	})
	if err != nil {
		return err
	}
	c.cons = cons
	c.msgs, err = cons.Messages(jetstream.PullMaxMessages(prefetch))
	return err
}

// ensure creates or updates the stream of pipe messages and the bucket of
// claims.
func (c *Conn) ensure(ctx context.Context) error {
	var err error
	c.stream, err = link.EnsureStream(ctx, c.js, protocol.PipesStreamConfig(c.cfg.Replicas), c.log)
	if err != nil {
		return fmt.Errorf("stream %s: %w", protocol.PipesStream, err)
	}
	c.kv, err = link.EnsureKeyValue(ctx, c.js, protocol.PipeEndsBucketConfig(c.cfg.Replicas), c.log)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", protocol.PipeEndsBucket, err)
	}
	return nil
}

// usable fails on an end that was closed or lost.
func (c *Conn) usable() error {
	if c.closed.Load() {
		return ErrClosed
	}
	if c.lost.Load() {
		return fmt.Errorf("pipe %s end %s: %w", c.name, c.end, ErrLeaseLost)
	}
	return nil
}

// Send sends msg to the peer. With the default SendWindow of 1 it returns
// once the broker has stored the message: one broker round trip per
// message (see Config.SendWindow for more throughput). Send does not keep
// msg. A peer that has closed its end does not make Send fail; what is sent
// to it is removed with the pipe.
func (c *Conn) Send(ctx context.Context, msg []byte) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if err := c.usable(); err != nil {
		return err
	}
	if c.sendErr != nil {
		return c.sendErr
	}
	m := &nats.Msg{Subject: c.subject, Data: msg}
	if c.cfg.SendWindow == 1 {
		if _, err := c.js.PublishMsg(ctx, m); err != nil {
			return fmt.Errorf("pipe %s send: %w", c.name, err)
		}
		return nil
	}
	if len(c.pending) == c.cfg.SendWindow {
		if err := c.awaitOldest(ctx); err != nil {
			return err
		}
	}
	// No retries: a retried message would be stored after later ones.
	f, err := c.js.PublishMsgAsync(m, jetstream.WithRetryAttempts(0))
	if err != nil {
		return fmt.Errorf("pipe %s send: %w", c.name, err)
	}
	c.pending = append(c.pending, f)
	return nil
}

// awaitOldest waits for the broker's answer to the oldest message in the
// window.
func (c *Conn) awaitOldest(ctx context.Context) error {
	f := c.pending[0]
	select {
	case <-f.Ok():
	case err := <-f.Err():
		c.sendErr = fmt.Errorf("pipe %s send: %w", c.name, err)
	case <-ctx.Done():
		return ctx.Err()
	}
	c.pending[0] = nil
	c.pending = c.pending[1:]
	return c.sendErr
}

// Flush waits until the broker has stored every message sent so far. It
// returns at once with a SendWindow of 1.
func (c *Conn) Flush(ctx context.Context) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if c.closed.Load() {
		return ErrClosed
	}
	return c.flush(ctx)
}

func (c *Conn) flush(ctx context.Context) error {
	for len(c.pending) > 0 && c.sendErr == nil {
		if err := c.awaitOldest(ctx); err != nil {
			return err
		}
	}
	return c.sendErr
}

// Recv returns the peer's next message, waiting for it until ctx ends. A
// peer that has not opened its end yet is waited for. Recv returns io.EOF
// once the peer has closed and every earlier message was read, and an error
// wrapping ErrPeerGone when the peer stopped renewing its claim without
// closing (within about 1.5 x PeerTimeout of its last renewal) and every
// message it sent was read.
func (c *Conn) Recv(ctx context.Context) ([]byte, error) {
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	for {
		if err := c.usable(); err != nil {
			return nil, err
		}
		if c.eof {
			return nil, io.EOF
		}
		msg, err := c.next(ctx)
		switch {
		case err == nil:
			if data, ok := c.take(ctx, msg); ok {
				return data, nil
			}
			continue // end-of-file
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, jetstream.ErrMsgIteratorClosed) && c.closed.Load():
			return nil, ErrClosed
		case !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded):
			return nil, fmt.Errorf("pipe %s recv: %w", c.name, err)
		}
		if err := c.checkPeer(ctx); err != nil {
			return nil, err
		}
	}
}

// next waits up to checkEvery for the peer's next message.
func (c *Conn) next(ctx context.Context) (jetstream.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.checkEvery())
	defer cancel()
	return c.msgs.Next(jetstream.NextContext(ctx))
}

// take reads msg; ok is false for the end-of-file marker.
func (c *Conn) take(ctx context.Context, msg jetstream.Msg) (data []byte, ok bool) {
	c.seenPeer.Store(true)
	if meta, err := msg.Metadata(); err == nil {
		c.lastRead = meta.Sequence.Stream
	}
	if c.read++; c.read%trimEvery == 0 {
		c.trim(ctx)
	}
	if msg.Headers().Get(protocol.HeaderPipe) == protocol.PipeEOF {
		c.eof = true
		return nil, false
	}
	return msg.Data(), true
}

// trim purges the peer's messages read so far.
func (c *Conn) trim(ctx context.Context) {
	err := c.stream.Purge(ctx, jetstream.WithPurgeSubject(c.peerSubject), jetstream.WithPurgeSequence(c.lastRead+1))
	if err != nil {
		c.log.WarnContext(ctx, "pipe trim failed", "error", err)
	}
}

// checkPeer runs when no message came for a while. It fails with
// ErrPeerGone when the peer was seen, no longer renews its claim, and left
// nothing unread.
//
// Liveness is judged on the broker's clock alone. The claim's age is the
// broker's time now, the timestamp of its answer to a stream info request
// (read first), minus the time the broker stored the claim's latest
// revision; the peer is gone once that age reaches the timeout, or once
// its claim has expired (the key's TTL, again kept by the broker). Neither
// this machine's clock nor the peer's enters, so clock skew between
// machines, or a clock that jumps, does not matter; and the age counts
// from when a renewal was stored, not from when this end first saw it.
func (c *Conn) checkPeer(ctx context.Context) error {
	now, err := protocol.BrokerNow(ctx, c.js, claimsStream)
	var e jetstream.KeyValueEntry
	if err == nil {
		e, err = c.kv.Get(ctx, c.peerKey)
	}
	var why string
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		if !c.seenPeer.Load() {
			return nil // not opened yet: wait for it
		}
		why = "its claim expired"
	case err != nil:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.WarnContext(ctx, "pipe peer check failed", "error", err)
		return nil
	default:
		c.seenPeer.Store(true)
		p := parseClaim(e)
		if p.Closed {
			return c.peerClosed(ctx)
		}
		timeout := max(c.cfg.PeerTimeout, time.Duration(p.TimeoutMS)*time.Millisecond)
		// A broker too old to stamp its answers gives a zero time: then
		// only the claim's expiry counts.
		if now.IsZero() || now.Sub(e.Created()) < timeout {
			return nil
		}
		why = fmt.Sprintf("no sign of life for %v", timeout)
	}
	if c.unread(ctx) {
		return nil
	}
	if e != nil {
		c.goneRev.Store(e.Revision())
	}
	return fmt.Errorf("pipe %s: %w: end %s sent %s", c.name, ErrPeerGone, c.end.Peer(), why)
}

// peerClosed: the peer's end-of-file is stored, so it comes; if nothing is
// left to read, it went with a removed pipe.
func (c *Conn) peerClosed(ctx context.Context) error {
	if c.unread(ctx) {
		return nil
	}
	c.eof = true
	return io.EOF
}

// unread reports whether the peer's subject may hold a message not read
// yet.
func (c *Conn) unread(ctx context.Context) bool {
	m, err := c.stream.GetLastMsgForSubject(ctx, c.peerSubject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false
	}
	return err != nil || m.Sequence > c.lastRead
}

// Close closes this end: it waits for the messages still in the send
// window, stores the end-of-file marker, after which the peer's Recv
// returns io.EOF, and marks the claim closed. Once both ends have closed
// (or the peer was gone), it removes the pipe's messages and claims from
// the broker. Close ends both directions, like Python's
// Connection.close: this end receives nothing more either.
//
// If a send failed in the window, Close stores no end-of-file and drops the
// claim, so that the peer's Recv fails with ErrPeerGone rather than see a
// clean end after a missing message. Close is bounded by a 5 s timeout;
// closing again returns nil.
func (c *Conn) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		c.closeErr = c.close()
	})
	if !first {
		return nil
	}
	return c.closeErr
}

func (c *Conn) close() error {
	c.closed.Store(true)
	c.stopLease()
	c.wg.Wait()
	c.msgs.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	c.sendMu.Lock()
	err := c.flush(ctx)
	c.sendMu.Unlock()
	switch {
	case c.lost.Load():
		err = errors.Join(err, ErrLeaseLost) // the claim is not ours to touch
	case err != nil:
		err = errors.Join(err, c.purgeKey(ctx, c.key, c.rev))
	default:
		err = c.finish(ctx)
	}
	c.deleteConsumer(ctx)
	if err != nil {
		return fmt.Errorf("close pipe %s end %s: %w", c.name, c.end, err)
	}
	c.log.InfoContext(ctx, "pipe end closed")
	return nil
}

// finish stores the end-of-file, marks the claim closed and, when the peer
// is done too, removes the pipe.
func (c *Conn) finish(ctx context.Context) error {
	eof := &nats.Msg{Subject: c.subject, Header: nats.Header{}}
	eof.Header.Set(protocol.HeaderPipe, protocol.PipeEOF)
	if _, err := c.js.PublishMsg(ctx, eof); err != nil {
		return fmt.Errorf("send end-of-file: %w", err)
	}
	last, err := c.lastSeq(ctx)
	if err != nil {
		return err
	}
	// Without a TTL the closed claim stays until the bucket's max age.
	if err := c.writeClaim(ctx, c.claimValue(true), 0); err != nil {
		return fmt.Errorf("mark the end closed: %w", err)
	}
	// Each end marks itself closed before it looks at the other, so of two
	// ends closing at once at least one sees both closed.
	peer, done, err := c.peerDone(ctx)
	if err != nil || !done {
		return err
	}
	if err := errors.Join(c.remove(ctx, last, peer), c.purgeKey(ctx, c.key, c.rev)); err != nil {
		return fmt.Errorf("remove the pipe: %w", err)
	}
	c.log.InfoContext(ctx, "pipe removed: both ends are done")
	return nil
}

// peerDone reports whether the peer has closed its end or is gone, with
// its claim, if any.
func (c *Conn) peerDone(ctx context.Context) (jetstream.KeyValueEntry, bool, error) {
	e, err := c.kv.Get(ctx, c.peerKey)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, c.seenPeer.Load(), nil // expired, or never opened
	case err != nil:
		return nil, false, err
	case parseClaim(e).Closed:
		return e, true, nil
	}
	gone := c.goneRev.Load()
	return e, gone != 0 && gone == e.Revision(), nil
}

// deleteConsumer removes this end's consumer from the broker rather than
// leave it to expire.
func (c *Conn) deleteConsumer(ctx context.Context) {
	info := c.cons.CachedInfo()
	if info == nil {
		return
	}
	err := c.stream.DeleteConsumer(ctx, info.Name)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		c.log.WarnContext(ctx, "pipe consumer not deleted; it expires when inactive", "error", err)
	}
}
