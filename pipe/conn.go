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

	"github.com/procq/procq/task"
)

// keepFor is how long an abandoned pipe's messages and claims stay in the
// broker before JetStream removes them.
const keepFor = 24 * time.Hour

// trimEvery is how many messages a reader reads between purges of them.
const trimEvery = 256

// closeTimeout bounds Close's round trips to the broker.
const closeTimeout = 5 * time.Second

// Conn is one open end of a pipe. Send may run concurrently with Recv; Recv
// is for one goroutine at a time.
type Conn struct {
	name   string
	end    End
	cfg    Config
	log    *slog.Logger
	js     jetstream.JetStream
	stream jetstream.Stream
	kv     jetstream.KeyValue
	msgs   jetstream.MessagesContext // the peer's messages, in order

	closed atomic.Bool
	lease  chan struct{} // closed to stop the lease goroutine
	wg     sync.WaitGroup

	mu  sync.Mutex
	rev uint64 // revision of our claim

	// Recv's own state.
	eof      bool
	seenPeer bool
	lastRead uint64
	read     int
}

// Open opens one end of the named pipe, creating the pipe's stream and
// bucket if needed. It fails with ErrEndInUse if another live process holds
// that end.
func Open(ctx context.Context, js jetstream.JetStream, name string, end End, cfg Config, logger *slog.Logger) (*Conn, error) {
	if err := task.ValidName(name); err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	if err := end.valid(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Conn{name: name, end: end, cfg: cfg.withDefaults(), js: js,
		log: logger.With("pipe", name, "end", string(end)), lease: make(chan struct{})}
	if err := c.ensure(ctx); err != nil {
		return nil, err
	}
	rev, err := acquire(ctx, c.kv, claimKey(name, end), c.cfg.PeerTimeout)
	if err != nil {
		return nil, fmt.Errorf("open pipe %s end %s: %w", name, end, err)
	}
	c.rev = rev
	cons, err := js.OrderedConsumer(ctx, task.PipesStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{Subject(name, end.Peer())},
	})
	if err == nil {
		c.msgs, err = cons.Messages(jetstream.PullMaxMessages(trimEvery))
	}
	if err != nil {
		_ = c.kv.Delete(ctx, claimKey(name, end))
		return nil, fmt.Errorf("open pipe %s end %s: %w", name, end, err)
	}
	c.wg.Go(c.keepClaim)
	c.log.Info("pipe end opened")
	return c, nil
}

func (c *Conn) ensure(ctx context.Context) error {
	var err error
	c.stream, err = c.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        task.PipesStream,
		Description: "procq pipes: the messages of each end",
		Subjects:    []string{task.PipePrefix + ".>"},
		Storage:     jetstream.FileStorage,
		MaxAge:      keepFor,
	})
	if err != nil {
		return fmt.Errorf("stream %s: %w", task.PipesStream, err)
	}
	c.kv, err = c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      task.PipeEndsBucket,
		Description: "claims on pipe ends, refreshed by their holders",
		Storage:     jetstream.FileStorage,
		TTL:         keepFor,
	})
	if err != nil {
		return fmt.Errorf("bucket %s: %w", task.PipeEndsBucket, err)
	}
	return nil
}

// keepClaim refreshes the claim every third of PeerTimeout until Close: the
// lease that keeps the end ours, and the heartbeat the peer watches.
func (c *Conn) keepClaim() {
	t := time.NewTicker(c.cfg.PeerTimeout / 3)
	defer t.Stop()
	for {
		select {
		case <-c.lease:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.PeerTimeout/3)
		c.mu.Lock()
		rev, err := c.kv.Update(ctx, claimKey(c.name, c.end), newClaim(), c.rev)
		if err == nil {
			c.rev = rev
		}
		c.mu.Unlock()
		cancel()
		if err != nil {
			c.log.Warn("pipe claim refresh failed", "error", err)
		}
	}
}

// Send sends one message to the peer and returns once the broker has
// stored it.
func (c *Conn) Send(ctx context.Context, data []byte) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if _, err := c.js.Publish(ctx, Subject(c.name, c.end), data); err != nil {
		return fmt.Errorf("pipe %s send: %w", c.name, err)
	}
	return nil
}

// Recv returns the peer's next message. It returns io.EOF once the peer has
// closed and every earlier message was read, and an error wrapping
// ErrPeerGone when the peer stopped refreshing its claim without closing and
// nothing is left to read.
func (c *Conn) Recv(ctx context.Context) ([]byte, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if c.eof {
		return nil, io.EOF
	}
	for {
		msg, err := c.next(ctx)
		if err == nil {
			return c.take(ctx, msg)
		}
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			return nil, ErrClosed
		case !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded):
			return nil, fmt.Errorf("pipe %s recv: %w", c.name, err)
		}
		if err := c.checkPeer(ctx); err != nil {
			return nil, err
		}
	}
}

// next waits up to a quarter of PeerTimeout for the peer's next message.
func (c *Conn) next(ctx context.Context) (jetstream.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.PeerTimeout/4)
	defer cancel()
	return c.msgs.Next(jetstream.NextContext(ctx))
}

func (c *Conn) take(ctx context.Context, msg jetstream.Msg) ([]byte, error) {
	c.seenPeer = true
	if meta, err := msg.Metadata(); err == nil {
		c.lastRead = meta.Sequence.Stream
	}
	if c.read++; c.read%trimEvery == 0 {
		c.trim(ctx)
	}
	if msg.Headers().Get(task.HeaderPipe) == "eof" {
		c.eof = true
		return nil, io.EOF
	}
	return msg.Data(), nil
}

// trim purges the peer's messages read so far.
func (c *Conn) trim(ctx context.Context) {
	err := c.stream.Purge(ctx, jetstream.WithPurgeSubject(Subject(c.name, c.end.Peer())),
		jetstream.WithPurgeSequence(c.lastRead+1))
	if err != nil {
		c.log.Warn("pipe trim failed", "error", err)
	}
}

// checkPeer runs when no message came for a while: it fails with
// ErrPeerGone if the peer was there, is no longer alive, and nothing it sent
// is left to read.
func (c *Conn) checkPeer(ctx context.Context) error {
	state, err := stateOf(ctx, c.kv, claimKey(c.name, c.end.Peer()), c.cfg.PeerTimeout)
	if err != nil {
		c.log.Warn("pipe peer check failed", "error", err)
		return nil
	}
	switch {
	case state == peerAlive:
		c.seenPeer = true
		return nil
	case state == peerAbsent && !c.seenPeer:
		return nil // the peer has not opened its end yet
	}
	if c.unread(ctx) {
		return nil
	}
	if state == peerClosed {
		// Closed, and its end-of-file marker already gone with the pipe.
		c.eof = true
		return io.EOF
	}
	return fmt.Errorf("pipe %s: %w: end %s sent no sign of life for %v", c.name, ErrPeerGone, c.end.Peer(), c.cfg.PeerTimeout)
}

// unread reports whether the peer's subject holds a message not read yet.
func (c *Conn) unread(ctx context.Context) bool {
	m, err := c.stream.GetLastMsgForSubject(ctx, Subject(c.name, c.end.Peer()))
	if err != nil {
		return false
	}
	return m.Sequence > c.lastRead
}

// Close sends end-of-file to the peer and releases this end. When the peer
// has closed too, it removes the pipe's messages and claims from the
// broker. Closing twice is safe.
func (c *Conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(c.lease)
	c.wg.Wait()
	c.msgs.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	eof := &nats.Msg{Subject: Subject(c.name, c.end), Header: nats.Header{}}
	eof.Header.Set(task.HeaderPipe, "eof")
	var errs []error
	if _, err := c.js.PublishMsg(ctx, eof); err != nil {
		errs = append(errs, fmt.Errorf("send end-of-file: %w", err))
	}
	b := []byte(`{"closed":true}`)
	if _, err := c.kv.Update(ctx, claimKey(c.name, c.end), b, c.rev); err != nil {
		if _, err := c.kv.Put(ctx, claimKey(c.name, c.end), b); err != nil {
			errs = append(errs, fmt.Errorf("release claim: %w", err))
		}
	}
	if state, err := stateOf(ctx, c.kv, claimKey(c.name, c.end.Peer()), c.cfg.PeerTimeout); err == nil && state == peerClosed {
		errs = append(errs, c.remove(ctx))
	}
	c.log.Info("pipe end closed")
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close pipe %s: %w", c.name, err)
	}
	return nil
}

// remove deletes the pipe's messages and both claims.
func (c *Conn) remove(ctx context.Context) error {
	err := c.stream.Purge(ctx, jetstream.WithPurgeSubject(task.PipePrefix+"."+c.name+".>"))
	for _, e := range []End{A, B} {
		if perr := c.kv.Purge(ctx, claimKey(c.name, e)); perr != nil {
			err = errors.Join(err, perr)
		}
	}
	if err == nil {
		c.log.Info("pipe removed")
	}
	return err
}
