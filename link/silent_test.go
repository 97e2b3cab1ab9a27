package link_test

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/link"
)

// freezer is a TCP proxy to the broker whose connections can be made
// silent: freeze stops forwarding on every connection open, in both
// directions, leaving the sockets open, as a node cut off by the network
// does; connections made afterwards are forwarded.
type freezer struct {
	ln     net.Listener
	mu     sync.Mutex
	frozen []chan struct{} // one per connection, closed on freeze
}

func startFreezer(t *testing.T, backend string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln}
	var conns sync.WaitGroup
	t.Cleanup(func() { ln.Close(); conns.Wait() })
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			frozen := make(chan struct{})
			f.mu.Lock()
			f.frozen = append(f.frozen, frozen)
			f.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				defer conns.Done()
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					select {
					case <-frozen:
						// Silent: nothing read is forwarded, and nothing more is
						// read, so the sender's buffers fill as towards a peer
						// that stopped acknowledging; the sockets stay open.
						<-done
						return
					default:
					}
					if n > 0 {
						if _, werr := dst.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						dst.Close()
						return
					}
				}
			}
			conns.Add(2)
			go pipe(b, c)
			go pipe(c, b)
			go func() { <-done; c.Close(); b.Close() }()
		}
	}()
	return f
}

func (f *freezer) url() string { return "nats://" + f.ln.Addr().String() }

func (f *freezer) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.frozen {
		close(ch)
	}
	f.frozen = nil
}

// A client whose link to the broker goes silent (no FIN, no RST: a node
// cut off by the network) while it publishes notices within seconds and
// reconnects, and a request is answered again. With nats.go's defaults it
// waited 2 minutes for unanswered pings, or a minute for a write blocked
// on the full socket.
func TestSilentLinkNoticedWithinSeconds(t *testing.T) {
	b := natstest.Start(t)
	px := startFreezer(t, b.URL[len("nats://"):])
	const timeout = 5 * time.Second // broker.connect_timeout: pings every 2 s
	nc, err := link.Connect(t.Context(), link.Config{URL: px.url(), Token: b.Token, Timeout: timeout, Name: "silent"},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	echo := b.Conn(t)
	if _, err := echo.Subscribe("echo", func(m *nats.Msg) { m.Respond(m.Data) }); err != nil {
		t.Fatal(err)
	}
	if err := echo.Flush(); err != nil { // the subscription is in place
		t.Fatal(err)
	}
	if _, err := nc.Request("echo", []byte("before"), 5*time.Second); err != nil {
		t.Fatalf("request before the freeze: %v", err)
	}
	reconnected := make(chan struct{})
	var once sync.Once
	nc.SetReconnectHandler(func(*nats.Conn) { once.Do(func() { close(reconnected) }) })

	px.freeze()
	frozeAt := time.Now()
	// A client busy publishing into the silent link: its writes block
	// once the socket's buffers are full.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		payload := make([]byte, 32<<10)
		for {
			select {
			case <-stop:
				return
			case <-reconnected:
				return
			default:
			}
			_ = nc.Publish("sink", payload) // may fail once the link is taken for lost
		}
	}()
	// Three ping intervals (6 s) and a reconnect: well within 15 s; a
	// minute and more before.
	const bound = 15 * time.Second
	select {
	case <-reconnected:
		t.Logf("silent link noticed and the client reconnected %.1fs after the freeze", time.Since(frozeAt).Seconds())
	case <-time.After(bound):
		t.Fatalf("the client did not notice its silent link within %v", bound)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, "echo", []byte("after"))
	if err != nil {
		t.Fatalf("request after the reconnect: %v", err)
	}
	if string(msg.Data) != "after" {
		t.Fatalf("request after the reconnect answered %q, want %q", msg.Data, "after")
	}
}
