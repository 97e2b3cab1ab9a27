package pipe_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/pipe"
	"github.com/procq/procq/protocol"
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopBenchBroker()
	if code == 0 {
		if err := goleak.Find(natstest.LeakOptions()...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// fast is the configuration of tests that wait for a dead peer.
var fast = pipe.Config{PeerTimeout: 500 * time.Millisecond}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// jsOn is a JetStream context on a connection of its own, as another
// process would have; closing the connection is how that process dies.
func jsOn(t *testing.T, b *natstest.Broker) (jetstream.JetStream, *nats.Conn) {
	t.Helper()
	nc := b.Conn(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js, nc
}

func open(t *testing.T, js jetstream.JetStream, name string, end pipe.End, cfg pipe.Config) *pipe.Conn {
	t.Helper()
	c, err := pipe.Open(testCtx(t), js, name, end, cfg, nil)
	if err != nil {
		t.Fatalf("open %s end %s: %v", name, end, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func send(t *testing.T, c *pipe.Conn, msgs ...string) {
	t.Helper()
	for _, m := range msgs {
		if err := c.Send(testCtx(t), []byte(m)); err != nil {
			t.Fatalf("send %q: %v", m, err)
		}
	}
}

func mustClose(t *testing.T, c *pipe.Conn) {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// recvAll reads until an error and returns what it read and the error.
func recvAll(t *testing.T, c *pipe.Conn) ([]string, error) {
	t.Helper()
	var got []string
	for {
		b, err := c.Recv(testCtx(t))
		if err != nil {
			return got, err
		}
		got = append(got, string(b))
	}
}

func wantAllThenEOF(t *testing.T, c *pipe.Conn, want ...string) {
	t.Helper()
	got, err := recvAll(t, c)
	if !errors.Is(err, io.EOF) || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q then %v; want %q then io.EOF", got, err, want)
	}
}

// subjects counts the messages of each subject matching filter in stream.
func subjects(t *testing.T, js jetstream.JetStream, stream, filter string) map[string]uint64 {
	t.Helper()
	s, err := js.Stream(testCtx(t), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(testCtx(t), jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects
}

// eventually polls cond every 50ms until it holds or d has passed.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wantRemoved checks that nothing of the pipe is left in the broker: no
// message, no claim, no consumer and no claim marker. It is called with one
// pipe per broker.
func wantRemoved(t *testing.T, js jetstream.JetStream, name string) {
	t.Helper()
	if got := subjects(t, js, protocol.PipesStream, protocol.PipeFilter(name)); len(got) != 0 {
		t.Errorf("messages left after both ends closed: %v", got)
	}
	kv, err := js.KeyValue(testCtx(t), protocol.PipeEndsBucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, end := range []string{"a", "b"} {
		if e, err := kv.Get(testCtx(t), protocol.PipeKey(name, end)); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Errorf("claim of end %s left: %v, %v", end, e, err)
		}
	}
	// Closed ends delete their consumers; a killed end's goes after
	// 2 x PeerTimeout (1 s with fast), and the markers of removed claims
	// after 1 s.
	kvFilter := "$KV." + protocol.PipeEndsBucket + "." + name + ".*"
	eventually(t, 5*time.Second, "consumers and claim markers removed", func() bool {
		s, err := js.Stream(testCtx(t), protocol.PipesStream)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().State.Consumers == 0 && len(subjects(t, js, "KV_"+protocol.PipeEndsBucket, kvFilter)) == 0
	})
}

func TestSendRecvThenEOF(t *testing.T) {
	js := natstest.Start(t).JetStream(t)
	a := open(t, js, "p1", pipe.A, pipe.Config{})
	b := open(t, js, "p1", pipe.B, pipe.Config{})
	send(t, a, "Hello from sender!", "Another message.")
	mustClose(t, a)
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
	wantAllThenEOF(t, b, "Hello from sender!", "Another message.")
	if _, err := b.Recv(testCtx(t)); !errors.Is(err, io.EOF) {
		t.Errorf("Recv after EOF: %v, want io.EOF again", err)
	}
	if err := a.Send(testCtx(t), []byte("x")); !errors.Is(err, pipe.ErrClosed) {
		t.Errorf("Send on a closed end: %v, want ErrClosed", err)
	}
	if _, err := a.Recv(testCtx(t)); !errors.Is(err, pipe.ErrClosed) {
		t.Errorf("Recv on a closed end: %v, want ErrClosed", err)
	}
	mustClose(t, b)
	wantRemoved(t, js, "p1")
}

// 10,000 messages each way, both directions at once: each end sends while
// it receives, and every message arrives, in order, once.
func TestBothDirectionsInOrder(t *testing.T) {
	const n = 10_000
	srv := natstest.Start(t)
	jsA, _ := jsOn(t, srv)
	jsB, _ := jsOn(t, srv)
	a := open(t, jsA, "duplex", pipe.A, pipe.Config{})
	b := open(t, jsB, "duplex", pipe.B, pipe.Config{})
	sendN := func(c *pipe.Conn, prefix string) error {
		for i := range n {
			if err := c.Send(testCtx(t), []byte(prefix+strconv.Itoa(i))); err != nil {
				return err
			}
		}
		return nil
	}
	checkN := func(c *pipe.Conn, prefix string) error {
		for i := range n {
			m, err := c.Recv(testCtx(t))
			if err != nil {
				return fmt.Errorf("Recv #%d: %w", i, err)
			}
			if want := prefix + strconv.Itoa(i); string(m) != want {
				return fmt.Errorf("message #%d is %q, want %q", i, m, want)
			}
		}
		return nil
	}
	errs := make([]error, 4)
	var wg sync.WaitGroup
	wg.Go(func() { errs[0] = sendN(a, "a") })
	wg.Go(func() { errs[1] = sendN(b, "b") })
	wg.Go(func() { errs[2] = checkN(b, "a") })
	wg.Go(func() { errs[3] = checkN(a, "b") })
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	mustClose(t, a)
	if m, err := b.Recv(testCtx(t)); !errors.Is(err, io.EOF) {
		t.Errorf("after %d messages and Close: %q, %v; want io.EOF", n, m, err)
	}
	mustClose(t, b)
	wantRemoved(t, jsA, "duplex")
}

// Durable: a receiver that opens after the sender has sent and closed
// still gets everything, then EOF.
func TestReceiverOpenedAfterSenderClosed(t *testing.T) {
	js := natstest.Start(t).JetStream(t)
	a := open(t, js, "late", pipe.A, pipe.Config{})
	send(t, a, "x", "y", "z")
	mustClose(t, a)
	b := open(t, js, "late", pipe.B, pipe.Config{})
	wantAllThenEOF(t, b, "x", "y", "z")
	mustClose(t, b)
	wantRemoved(t, js, "late")
}

// A receiver whose peer has not opened yet waits until its context ends,
// not ErrPeerGone; a live peer that sends nothing for several peer timeouts
// is not taken for gone either.
func TestReceiverWaitsForSender(t *testing.T) {
	js := natstest.Start(t).JetStream(t)
	b := open(t, js, "early", pipe.B, fast)
	wait := func(what string) {
		t.Helper()
		start := time.Now() // before the deadline is set: after it, a busy machine's delay between the two counts against the wait
		ctx, cancel := context.WithTimeout(t.Context(), 4*fast.PeerTimeout)
		defer cancel()
		m, err := b.Recv(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Recv %s: %q, %v; want context.DeadlineExceeded", what, m, err)
		}
		if waited := time.Since(start); waited < 4*fast.PeerTimeout {
			t.Fatalf("Recv %s returned after %v, before its deadline", what, waited)
		}
	}
	wait("before the peer opened")
	a := open(t, js, "early", pipe.A, fast)
	wait("while the peer is idle")
	send(t, a, "finally")
	mustClose(t, a)
	wantAllThenEOF(t, b, "finally")
}

func TestThirdOpenerRefused(t *testing.T) {
	srv := natstest.Start(t)
	js := srv.JetStream(t)
	open(t, js, "two", pipe.A, pipe.Config{})
	open(t, js, "two", pipe.B, pipe.Config{})
	third, _ := jsOn(t, srv)
	for _, end := range []pipe.End{pipe.A, pipe.B} {
		c, err := pipe.Open(testCtx(t), third, "two", end, pipe.Config{}, nil)
		if !errors.Is(err, pipe.ErrEndInUse) {
			t.Errorf("third opener of end %s: %v, %v; want ErrEndInUse", end, c, err)
			continue
		}
		if want := fmt.Sprintf("held by pid %d on ", os.Getpid()); !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestOpenRejectsBadArguments(t *testing.T) {
	js := natstest.Start(t).JetStream(t)
	tests := []struct {
		name    string
		pipe    string
		end     pipe.End
		cfg     pipe.Config
		wantErr string
	}{
		{name: "subject token", pipe: "a.b", end: pipe.A, wantErr: "not a valid name"},
		{name: "empty name", pipe: "", end: pipe.A, wantErr: "not a valid name"},
		{name: "third end", pipe: "p", end: pipe.End("c"), wantErr: `pipe end "c"`},
		{name: "peer timeout", pipe: "p", end: pipe.A, cfg: pipe.Config{PeerTimeout: time.Millisecond}, wantErr: "at least 100ms"},
		{name: "send window", pipe: "p", end: pipe.A, cfg: pipe.Config{SendWindow: -1}, wantErr: "at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := pipe.Open(testCtx(t), js, tt.pipe, tt.end, tt.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Open: %v, %v; want an error containing %q", c, err, tt.wantErr)
			}
		})
	}
}

// kill makes the end's process die as under kill -9: its connection drops,
// without end-of-file or a closed claim. Close afterwards only stops its
// goroutines.
func kill(t *testing.T, nc *nats.Conn, c *pipe.Conn) time.Time {
	t.Helper()
	nc.Close()
	killed := time.Now()
	if err := c.Close(); err == nil {
		t.Fatal("Close on a dead connection succeeded")
	}
	return killed
}

// wantPeerGone reads want, then expects ErrPeerGone within the bound the
// doc promises (1.5 x PeerTimeout after the last renewal, plus slack for
// a loaded machine), and not before the peer's lease could have run out.
func wantPeerGone(t *testing.T, c *pipe.Conn, killed time.Time, want ...string) {
	t.Helper()
	got, err := recvAll(t, c)
	if !errors.Is(err, pipe.ErrPeerGone) || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q then %v; want %q then ErrPeerGone", got, err, want)
	}
	after := time.Since(killed)
	if lo, hi := fast.PeerTimeout/3, 3*fast.PeerTimeout/2+500*time.Millisecond; after < lo || after > hi {
		t.Errorf("ErrPeerGone %v after the kill, want between %v and %v", after, lo, hi)
	}
	if !strings.Contains(err.Error(), "end a sent") {
		t.Errorf("error %q does not name the peer's end", err)
	}
	t.Logf("%v after the kill: %v", after.Round(time.Millisecond), err)
}

// A peer killed without closing: everything it sent is read, then Recv
// fails with ErrPeerGone in bounded time. Its claim expires with its lease,
// so its end can be opened again; the new holder goes on with the pipe.
func TestDeadPeer(t *testing.T) {
	srv := natstest.Start(t)
	jsA, ncA := jsOn(t, srv)
	jsB, _ := jsOn(t, srv)
	a := open(t, jsA, "dead", pipe.A, fast)
	b := open(t, jsB, "dead", pipe.B, fast)
	send(t, a, "one", "two", "last words")
	killed := kill(t, ncA, a)

	jsA2, _ := jsOn(t, srv)
	if c, err := pipe.Open(testCtx(t), jsA2, "dead", pipe.A, fast, nil); !errors.Is(err, pipe.ErrEndInUse) {
		t.Fatalf("open the dead end before its lease ran out: %v, %v; want ErrEndInUse", c, err)
	}
	wantPeerGone(t, b, killed, "one", "two", "last words")

	var a2 *pipe.Conn
	eventually(t, 10*time.Second, "the dead end can be opened again", func() bool {
		c, err := pipe.Open(testCtx(t), jsA2, "dead", pipe.A, fast, nil)
		if err != nil && !errors.Is(err, pipe.ErrEndInUse) {
			t.Fatal(err)
		}
		a2 = c
		return err == nil
	})
	t.Cleanup(func() { _ = a2.Close() })
	send(t, a2, "back")
	mustClose(t, a2)
	wantAllThenEOF(t, b, "back")
	mustClose(t, b)
	wantRemoved(t, jsB, "dead")
}

// Closing the end whose peer is gone removes the pipe, dead claim included.
func TestClosingAfterPeerGoneRemovesPipe(t *testing.T) {
	srv := natstest.Start(t)
	jsA, ncA := jsOn(t, srv)
	jsB, _ := jsOn(t, srv)
	a := open(t, jsA, "orphan", pipe.A, fast)
	b := open(t, jsB, "orphan", pipe.B, fast)
	send(t, a, "m")
	send(t, b, "never read")
	wantPeerGone(t, b, kill(t, ncA, a), "m")
	mustClose(t, b)
	wantRemoved(t, jsB, "orphan")
}

// Reopening an end whose earlier holder closed it starts a new pipe,
// unless the peer still reads the old one.
func TestReopenClosedEnd(t *testing.T) {
	js := natstest.Start(t).JetStream(t)

	a := open(t, js, "reuse", pipe.A, pipe.Config{})
	send(t, a, "old")
	mustClose(t, a)
	b := open(t, js, "reuse", pipe.B, pipe.Config{})
	if c, err := pipe.Open(testCtx(t), js, "reuse", pipe.A, pipe.Config{}, nil); !errors.Is(err, pipe.ErrEndInUse) {
		t.Fatalf("reopen a closed end while its peer reads: %v, %v; want ErrEndInUse", c, err)
	}
	wantAllThenEOF(t, b, "old")
	mustClose(t, b)

	// Nobody read this one: a new sender discards it.
	a = open(t, js, "reuse", pipe.A, pipe.Config{})
	send(t, a, "stale")
	mustClose(t, a)
	a = open(t, js, "reuse", pipe.A, pipe.Config{})
	if got := subjects(t, js, protocol.PipesStream, protocol.PipeFilter("reuse")); len(got) != 0 {
		t.Errorf("messages of the ended pipe left after the reset: %v", got)
	}
	send(t, a, "new")
	mustClose(t, a)
	b = open(t, js, "reuse", pipe.B, pipe.Config{})
	wantAllThenEOF(t, b, "new")
	mustClose(t, b)
	wantRemoved(t, js, "reuse")
}

// The reader purges what it has read every 256 messages; both Closes
// remove the rest.
func TestTrimAndRemove(t *testing.T) {
	js := natstest.Start(t).JetStream(t)
	a := open(t, js, "trim", pipe.A, pipe.Config{})
	b := open(t, js, "trim", pipe.B, pipe.Config{})
	want := make([]string, 600)
	for i := range want {
		want[i] = strconv.Itoa(i)
	}
	send(t, a, want...)
	mustClose(t, a)
	wantAllThenEOF(t, b, want...)
	// 601 read (with the end-of-file), 512 of them purged.
	got := subjects(t, js, protocol.PipesStream, protocol.PipeFilter("trim"))
	if len(got) != 1 || got[protocol.PipeSubject("trim", "a")] != 89 {
		t.Errorf("messages before the reader closed: %v, want 89 on %s", got, protocol.PipeSubject("trim", "a"))
	}
	mustClose(t, b)
	wantRemoved(t, js, "trim")
}

// With a send window, Send does not wait for each acknowledgement; order
// and completeness hold all the same.
func TestSendWindow(t *testing.T) {
	const n = 2000
	js := natstest.Start(t).JetStream(t)
	a := open(t, js, "window", pipe.A, pipe.Config{SendWindow: 64})
	b := open(t, js, "window", pipe.B, pipe.Config{})
	want := make([]string, n)
	for i := range want {
		want[i] = strconv.Itoa(i)
	}
	send(t, a, want...)
	if err := a.Flush(testCtx(t)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if got := subjects(t, js, protocol.PipesStream, protocol.PipeSubject("window", "a")); got[protocol.PipeSubject("window", "a")] != n {
		t.Errorf("stored after Flush: %v, want %d", got, n)
	}
	send(t, a, "after flush")
	mustClose(t, a)
	wantAllThenEOF(t, b, append(want, "after flush")...)
	if err := a.Flush(testCtx(t)); !errors.Is(err, pipe.ErrClosed) {
		t.Errorf("Flush after Close: %v, want ErrClosed", err)
	}
}

// Close makes a Recv blocked in another goroutine return ErrClosed.
func TestCloseUnblocksRecv(t *testing.T) {
	js := natstest.Start(t).JetStream(t)
	b := open(t, js, "block", pipe.B, pipe.Config{})
	done := make(chan error, 1)
	go func() {
		_, err := b.Recv(testCtx(t))
		done <- err
	}()
	mustClose(t, b)
	select {
	case err := <-done:
		if !errors.Is(err, pipe.ErrClosed) {
			t.Errorf("blocked Recv after Close: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocked Recv did not return after Close")
	}
}

// An end whose claim is taken from it (here: removed behind its back)
// stops: Send, Recv and Close say the lease was lost.
func TestLeaseLost(t *testing.T) {
	js := natstest.Start(t).JetStream(t)
	a := open(t, js, "lost", pipe.A, fast)
	kv, err := js.KeyValue(testCtx(t), protocol.PipeEndsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(testCtx(t), protocol.PipeKey("lost", "a")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "Send fails with ErrLeaseLost", func() bool {
		return errors.Is(a.Send(testCtx(t), []byte("x")), pipe.ErrLeaseLost)
	})
	if _, err := a.Recv(testCtx(t)); !errors.Is(err, pipe.ErrLeaseLost) {
		t.Errorf("Recv: %v, want ErrLeaseLost", err)
	}
	if err := a.Close(); !errors.Is(err, pipe.ErrLeaseLost) {
		t.Errorf("Close: %v, want ErrLeaseLost", err)
	}
}
