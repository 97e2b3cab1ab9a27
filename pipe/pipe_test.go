package pipe_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/pipe"
	"github.com/procq/procq/task"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var fast = pipe.Config{PeerTimeout: 600 * time.Millisecond}

func open(t *testing.T, js jetstream.JetStream, name string, end pipe.End, cfg pipe.Config) *pipe.Conn {
	t.Helper()
	c, err := pipe.Open(ctxT(t), js, name, end, cfg, nil)
	if err != nil {
		t.Fatalf("open %s/%s: %v", name, end, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func recvAll(t *testing.T, c *pipe.Conn) ([]string, error) {
	t.Helper()
	var got []string
	for {
		b, err := c.Recv(ctxT(t))
		if err != nil {
			return got, err
		}
		got = append(got, string(b))
	}
}

func TestSendRecvThenEOF(t *testing.T) {
	js := natstest.Start(t).JetStream(t)
	a := open(t, js, "p1", pipe.A, pipe.Config{})
	b := open(t, js, "p1", pipe.B, pipe.Config{})
	for _, m := range []string{"Hello from sender!", "Another message."} {
		if err := a.Send(ctxT(t), []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	got, err := recvAll(t, b)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("Recv after the last message: err %v, want io.EOF", err)
	}
	if fmt.Sprint(got) != "[Hello from sender! Another message.]" {
		t.Errorf("got %q", got)
	}
	if _, err := b.Recv(ctxT(t)); !errors.Is(err, io.EOF) {
		t.Errorf("Recv after EOF: %v, want io.EOF again", err)
	}
	if err := a.Send(ctxT(t), []byte("x")); !errors.Is(err, pipe.ErrClosed) {
		t.Errorf("Send on a closed end: %v, want ErrClosed", err)
	}
}

// 10,000 messages arrive in order, none missing, in both directions at
// once: each end sends while it receives.
func TestBothDirectionsInOrder(t *testing.T) {
	const n = 10_000
	js := natstest.Start(t).JetStream(t)
	a := open(t, js, "duplex", pipe.A, pipe.Config{})
	b := open(t, js, "duplex", pipe.B, pipe.Config{})
	var wg sync.WaitGroup
	send := func(c *pipe.Conn, prefix string) {
		for i := range n {
			if err := c.Send(ctxT(t), []byte(prefix+strconv.Itoa(i))); err != nil {
				t.Error(err)
				return
			}
		}
	}
	check := func(c *pipe.Conn, prefix string) {
		for i := range n {
			m, err := c.Recv(ctxT(t))
			if err != nil {
				t.Errorf("Recv #%d: %v", i, err)
				return
			}
			if want := prefix + strconv.Itoa(i); string(m) != want {
				t.Errorf("message %d is %q, want %q", i, m, want)
				return
			}
		}
	}
	wg.Go(func() { send(a, "a") })
	wg.Go(func() { send(b, "b") })
	wg.Go(func() { check(b, "a") })
	wg.Go(func() { check(a, "b") })
	wg.Wait()
	// Then a closes: b reads EOF, nothing more.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if m, err := b.Recv(ctxT(t)); !errors.Is(err, io.EOF) {
		t.Errorf("after %d messages and Close: %q, %v; want io.EOF", n, m, err)
	}
}

func TestReceiverOpenedAfterSenderClosed(t *testing.T) {
	js := natstest.Start(t).JetStream(t)
	a := open(t, js, "late", pipe.A, pipe.Config{})
	for i := range 3 {
		if err := a.Send(ctxT(t), []byte{byte('x' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b := open(t, js, "late", pipe.B, pipe.Config{})
	got, err := recvAll(t, b)
	if !errors.Is(err, io.EOF) || fmt.Sprint(got) != "[x y z]" {
		t.Errorf("late receiver got %q, %v; want [x y z] then EOF", got, err)
	}
}

func TestThirdOpenerRefused(t *testing.T) {
	js := natstest.Start(t).JetStream(t)
	open(t, js, "two", pipe.A, pipe.Config{})
	open(t, js, "two", pipe.B, pipe.Config{})
	for _, end := range []pipe.End{pipe.A, pipe.B} {
		_, err := pipe.Open(ctxT(t), js, "two", end, pipe.Config{}, nil)
		if !errors.Is(err, pipe.ErrEndInUse) {
			t.Errorf("third opener of end %s: err %v, want ErrEndInUse", end, err)
		}
	}
	if _, err := pipe.Open(ctxT(t), js, "two", pipe.End("c"), pipe.Config{}, nil); err == nil {
		t.Errorf("opening end c succeeded")
	}
}

// A holder that dies leaves a claim that goes stale: the end can be opened
// again, and the peer's Recv fails with ErrPeerGone in bounded time after
// reading what the dead holder sent.
func TestDeadPeer(t *testing.T) {
	js := natstest.Start(t).JetStream(t)
	a := open(t, js, "dead", pipe.A, fast)
	b := open(t, js, "dead", pipe.B, fast)
	if err := a.Send(ctxT(t), []byte("last words")); err != nil {
		t.Fatal(err)
	}
	a.Abandon()
	m, err := b.Recv(ctxT(t))
	if err != nil || string(m) != "last words" {
		t.Fatalf("Recv: %q, %v; want the message sent before the peer died", m, err)
	}
	start := time.Now()
	_, err = b.Recv(ctxT(t))
	if !errors.Is(err, pipe.ErrPeerGone) {
		t.Fatalf("Recv after the peer died: err %v, want ErrPeerGone", err)
	}
	if waited := time.Since(start); waited > 10*fast.PeerTimeout {
		t.Errorf("ErrPeerGone after %v; the bound is about 1.5 x PeerTimeout (%v)", waited, fast.PeerTimeout)
	}
	// The dead holder's end can be claimed again once its claim is stale.
	a2, err := pipe.Open(ctxT(t), js, "dead", pipe.A, fast, nil)
	if err != nil {
		t.Fatalf("reopen the dead end: %v", err)
	}
	_ = a2.Close()
}

// A receiver waiting for a sender that has not opened yet waits, and gets
// the messages once it does.
func TestReceiverWaitsForSender(t *testing.T) {
	js := natstest.Start(t).JetStream(t)
	b := open(t, js, "early", pipe.B, fast)
	go func() {
		time.Sleep(4 * fast.PeerTimeout)
		a, err := pipe.Open(context.Background(), js, "early", pipe.A, fast, nil)
		if err != nil {
			t.Error(err)
			return
		}
		_ = a.Send(context.Background(), []byte("finally"))
		_ = a.Close()
	}()
	got, err := recvAll(t, b)
	if !errors.Is(err, io.EOF) || fmt.Sprint(got) != "[finally]" {
		t.Errorf("got %q, %v; want [finally] then EOF", got, err)
	}
}

func TestPipeRemovedAfterBothClose(t *testing.T) {
	js := natstest.Start(t).JetStream(t)
	a := open(t, js, "gone", pipe.A, pipe.Config{})
	b := open(t, js, "gone", pipe.B, pipe.Config{})
	for i := range 600 { // more than one trim
		if err := a.Send(ctxT(t), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	_ = a.Close()
	got, err := recvAll(t, b)
	if !errors.Is(err, io.EOF) || len(got) != 600 || got[599] != "599" {
		t.Fatalf("got %d messages, %v", len(got), err)
	}
	_ = b.Close()
	s, err := js.Stream(ctxT(t), task.PipesStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctxT(t), jetstream.WithSubjectFilter(task.PipePrefix+".gone.>"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(info.State.Subjects); n != 0 {
		t.Errorf("pipe subjects left after both closed: %v", info.State.Subjects)
	}
	kv, err := js.KeyValue(ctxT(t), task.PipeEndsBucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"gone.a", "gone.b"} {
		if _, err := kv.Get(ctxT(t), k); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Errorf("claim %s left: %v", k, err)
		}
	}
	// The name is free again.
	a2 := open(t, js, "gone", pipe.A, pipe.Config{})
	_ = a2.Close()
}
