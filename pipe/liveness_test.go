package pipe_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/pipe"
	"github.com/procq/procq/protocol"
)

func openHooked(t *testing.T, js jetstream.JetStream, name string, end pipe.End, h pipe.Hooks) *pipe.Conn {
	t.Helper()
	c, err := pipe.OpenWithHooks(testCtx(t), js, name, end, fast, h)
	if err != nil {
		t.Fatalf("open %s end %s: %v", name, end, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// A fault is what a broken broker link does to one claim write; put makes
// the write.
type fault func(ctx context.Context, put func(context.Context) (uint64, error)) (uint64, error)

var (
	// answerLost: the claim is written, the answer never comes back.
	answerLost fault = func(ctx context.Context, put func(context.Context) (uint64, error)) (uint64, error) {
		if _, err := put(ctx); err != nil {
			return 0, err
		}
		return 0, nats.ErrTimeout
	}
	// noAnswer: nothing reaches the broker; the attempt times out.
	noAnswer fault = func(ctx context.Context, _ func(context.Context) (uint64, error)) (uint64, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	// storedLate: the attempt times out, and the write reaches the broker
	// after that.
	storedLate fault = func(ctx context.Context, put func(context.Context) (uint64, error)) (uint64, error) {
		<-ctx.Done()
		late, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := put(late); err != nil {
			return 0, err
		}
		return 0, ctx.Err()
	}
	// refused: the broker answers with an error (no stream responded, as
	// during a leader election).
	refused fault = func(context.Context, func(context.Context) (uint64, error)) (uint64, error) {
		return 0, jetstream.ErrNoStreamResponse
	}
)

// injector applies its fault to the next armed claim writes, and lets the
// others through.
type injector struct {
	f     fault
	armed atomic.Int32
	fired atomic.Int32
}

func (in *injector) put(ctx context.Context, put func(context.Context) (uint64, error)) (uint64, error) {
	for {
		n := in.armed.Load()
		if n <= 0 {
			return put(ctx)
		}
		if in.armed.CompareAndSwap(n, n-1) {
			in.fired.Add(1)
			return in.f(ctx, put)
		}
	}
}

// rewriteOwnClaim writes end a's claim again behind its back, as a
// duplicate of its own write delivered late would: the revision changes,
// the holder does not.
func rewriteOwnClaim(t *testing.T, js jetstream.JetStream, name string) {
	t.Helper()
	kv, err := js.KeyValue(testCtx(t), protocol.PipeEndsBucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(testCtx(t), protocol.PipeKey(name, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(testCtx(t), protocol.PipeKey(name, "a"), e.Value()); err != nil {
		t.Fatal(err)
	}
}

// steady is fast with room for a busy machine.
var steady = pipe.Config{PeerTimeout: 1500 * time.Millisecond}

// A renewal that fails, however it fails, is retried; the claim stays its
// holder's and the peer does not take the live end for gone, for several
// peer timeouts.
func TestRenewalFailureIsRetried(t *testing.T) {
	tests := []struct {
		name  string
		fault fault
		times int32 // consecutive claim writes that fail
		// compete, if set, disturbs the claim instead of a fault.
		compete func(t *testing.T, js jetstream.JetStream, name string)
	}{
		{name: "answer lost", fault: answerLost, times: 1},
		{name: "no answer", fault: noAnswer, times: 1},
		{name: "stored after the attempt gave up", fault: storedLate, times: 1},
		{name: "refused three times in a row", fault: refused, times: 3},
		{name: "own claim rewritten", compete: rewriteOwnClaim},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := natstest.Start(t)
			jsA, _ := jsOn(t, srv)
			jsB, _ := jsOn(t, srv)
			in := &injector{f: tt.fault}
			// A lease of 1.5 s, not fast's 500 ms: on a machine loaded
			// twentyfold a renewal could wait out a 500 ms lease in the
			// run queue, and the live end lose its claim to expiry.
			a, err := pipe.OpenWithHooks(testCtx(t), jsA, "flaky", pipe.A, steady, pipe.Hooks{Put: in.put})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = a.Close() })
			b := open(t, jsB, "flaky", pipe.B, steady)
			send(t, a, "hello")
			if m, err := b.Recv(testCtx(t)); err != nil || string(m) != "hello" {
				t.Fatalf("Recv: %q, %v; want \"hello\"", m, err)
			}

			if tt.compete != nil {
				tt.compete(t, jsB, "flaky")
			}
			in.armed.Store(tt.times)
			ctx, cancel := context.WithTimeout(t.Context(), 4*steady.PeerTimeout)
			defer cancel()
			if m, err := b.Recv(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Recv while end a is alive: %q, %v; want context.DeadlineExceeded", m, err)
			}
			if got := in.fired.Load(); got != tt.times {
				t.Fatalf("fault hit %d claim writes, want %d", got, tt.times)
			}

			send(t, a, "still here")
			mustClose(t, a)
			wantAllThenEOF(t, b, "still here")
		})
	}
}

// skewed is a local clock off by the offset it holds.
func skewed(off *atomic.Int64) func() time.Time {
	return func() time.Time { return time.Now().Add(time.Duration(off.Load())) }
}

// recvIdle receives on both ends at once for d and returns the errors.
func recvIdle(t *testing.T, d time.Duration, ends ...*pipe.Conn) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	errs := make([]error, len(ends))
	var wg sync.WaitGroup
	for i, c := range ends {
		wg.Go(func() { _, errs[i] = c.Recv(ctx) })
	}
	wg.Wait()
	return errs
}

// Liveness reads only the broker's clock: ends whose local clocks are an
// hour off, from the start or by a jump while the pipe is open and idle,
// still see a live peer as alive and a dead one as gone within the usual
// bound.
func TestClockSkew(t *testing.T) {
	const hour = int64(time.Hour)
	tests := []struct {
		name      string
		atOpen    [2]int64 // clock offsets of ends a and b when they open
		afterIdle [2]int64 // and after a first idle PeerTimeout
	}{
		{name: "an hour off each way", atOpen: [2]int64{hour, -hour}, afterIdle: [2]int64{hour, -hour}},
		{name: "clocks jump an hour", atOpen: [2]int64{0, 0}, afterIdle: [2]int64{hour, hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := natstest.Start(t)
			jsA, ncA := jsOn(t, srv)
			jsB, _ := jsOn(t, srv)
			var offA, offB atomic.Int64
			offA.Store(tt.atOpen[0])
			offB.Store(tt.atOpen[1])
			a := openHooked(t, jsA, "skew", pipe.A, pipe.Hooks{Now: skewed(&offA)})
			b := openHooked(t, jsB, "skew", pipe.B, pipe.Hooks{Now: skewed(&offB)})
			send(t, a, "hello")
			if m, err := b.Recv(testCtx(t)); err != nil || string(m) != "hello" {
				t.Fatalf("Recv: %q, %v; want \"hello\"", m, err)
			}
			wantAlive := func(d time.Duration) {
				t.Helper()
				for i, err := range recvIdle(t, d, a, b) {
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Fatalf("Recv of end %s while its peer is alive: %v; want context.DeadlineExceeded", []string{"a", "b"}[i], err)
					}
				}
			}
			wantAlive(fast.PeerTimeout)
			offA.Store(tt.afterIdle[0])
			offB.Store(tt.afterIdle[1])
			wantAlive(3 * fast.PeerTimeout)
			wantPeerGone(t, b, kill(t, ncA, a))
		})
	}
}
