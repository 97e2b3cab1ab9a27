// Package natstest starts a real embedded NATS JetStream server per test:
// a random loopback port, a store in t.TempDir(), shut down in t.Cleanup.
package natstest

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/broker"
)

// Token is the client token of every test server.
const Token = "natstest-token"

// Broker is a running test server.
type Broker struct {
	URL      string
	StoreDir string
	Token    string
	Server   *broker.Server
}

// Start starts a server on 127.0.0.1 with a random port and a temporary
// store; it is shut down when the test ends.
func Start(t testing.TB) *Broker {
	t.Helper()
	dir := t.TempDir()
	srv, err := broker.Start(broker.Config{
		URL:      "nats://127.0.0.1:0",
		StoreDir: dir,
		Token:    Token,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("start test broker: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return &Broker{URL: srv.ClientURL(), StoreDir: dir, Token: Token, Server: srv}
}

// Conn connects to the server; the connection is closed when the test ends.
func (b *Broker) Conn(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(b.URL, nats.Token(b.Token))
	if err != nil {
		t.Fatalf("connect test broker: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// JetStream returns a JetStream context on a new connection.
func (b *Broker) JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(b.Conn(t))
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return js
}

// FixedAddr is for a test that needs a broker's address before the broker
// exists (clients started first, or an address nobody serves): a free
// loopback port below the kernel's ephemeral range (32768 on), where the
// servers of other tests, which bind port 0, never land.
func FixedAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		_ = l.Close()
		return addr
	}
	t.Fatal("no free loopback port found")
	return ""
}

// Restartable is procq's broker on a fixed address and store that a test
// stops and starts again: a broker that goes away and comes back, its
// store kept. It is started; Restart stops it and starts it again; the
// test's end stops it.
type Restartable struct {
	t    testing.TB
	addr string
	dir  string
	srv  *broker.Server
}

// StartRestartable starts a broker that the test may restart.
func StartRestartable(t testing.TB) *Restartable {
	t.Helper()
	r := &Restartable{t: t, addr: FixedAddr(t), dir: t.TempDir()}
	r.start()
	t.Cleanup(func() { r.srv.Shutdown() })
	return r
}

func (r *Restartable) start() {
	r.t.Helper()
	srv, err := broker.Start(broker.Config{URL: r.URL(), StoreDir: r.dir, Token: Token}, slog.New(slog.DiscardHandler))
	if err != nil {
		r.t.Fatal(err)
	}
	r.srv = srv
}

// URL is the broker's client URL, the same across restarts.
func (r *Restartable) URL() string { return "nats://" + r.addr }

// Stop stops the broker; Start starts it again on the same address and
// store.
func (r *Restartable) Stop() { r.srv.Shutdown() }

// Start starts the broker again after Stop.
func (r *Restartable) Start() { r.start() }

// Conn connects with the token, reconnecting for ever every 50 ms, and is
// closed when the test ends.
func (r *Restartable) Conn(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(r.URL(), nats.Token(Token), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}
