package broker_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/procq/procq/broker"
	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/link"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, natstest.LeakOptions()...)
}

var quiet = slog.New(slog.DiscardHandler)

func TestStartBindsLoopbackAndWritesToken(t *testing.T) {
	dir := t.TempDir()
	srv, err := broker.Start(broker.Config{URL: "nats://127.0.0.1:0", StoreDir: dir}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	if !strings.HasPrefix(srv.ClientURL(), "nats://127.0.0.1:") {
		t.Errorf("ClientURL %q, want a 127.0.0.1 address", srv.ClientURL())
	}
	fi, err := os.Stat(filepath.Join(dir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	tok, err := link.ReadToken(filepath.Join(dir, "token"))
	if err != nil || tok != srv.Token() || len(tok) != 48 {
		t.Errorf("token file %q (%v), server token %q", tok, err, srv.Token())
	}
	// The server is not reachable on another local address.
	if _, err := nats.Connect(strings.Replace(srv.ClientURL(), "127.0.0.1", "127.0.0.2", 1), nats.Token(tok), nats.Timeout(time.Second)); err == nil {
		t.Errorf("server answered on 127.0.0.2: it is not bound to 127.0.0.1 alone")
	}
}

func TestTokenKeptAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	s1, err := broker.Start(broker.Config{URL: "nats://127.0.0.1:0", StoreDir: dir}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	tok := s1.Token()
	s1.Shutdown()
	s2, err := broker.Start(broker.Config{URL: "nats://127.0.0.1:0", StoreDir: dir}, quiet)
	if err != nil {
		t.Fatalf("restart on the same store after shutdown: %v", err)
	}
	defer s2.Shutdown()
	if s2.Token() != tok {
		t.Errorf("token changed across restart")
	}
}

func TestSecondServerOnSameStoreIsRefused(t *testing.T) {
	dir := t.TempDir()
	s1, err := broker.Start(broker.Config{URL: "nats://127.0.0.1:0", StoreDir: dir}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Shutdown()
	_, err = broker.Start(broker.Config{URL: "nats://127.0.0.1:0", StoreDir: dir}, quiet)
	var le *broker.LockedError
	if !errors.As(err, &le) || le.Dir != dir || le.PID != strconv.Itoa(os.Getpid()) {
		t.Fatalf("second Start: err %v, want *LockedError for %s held by pid %d", err, dir, os.Getpid())
	}
}

func TestPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = broker.Start(broker.Config{URL: "nats://" + l.Addr().String(), StoreDir: t.TempDir()}, quiet)
	if !errors.Is(err, broker.ErrNotReady) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("Start on a taken port: err %v, want ErrNotReady saying in use", err)
	}
}

// A client started before the broker waits for it; the token file the
// broker writes is picked up once it exists.
func TestConnectWaitsForBroker(t *testing.T) {
	dir := t.TempDir()
	addr := natstest.FixedAddr(t)
	url := "nats://" + addr
	started := make(chan *broker.Server, 1)
	go func() {
		time.Sleep(700 * time.Millisecond)
		srv, err := broker.Start(broker.Config{URL: url, StoreDir: dir}, quiet)
		if err != nil {
			t.Error(err)
		}
		started <- srv
	}()
	nc, err := link.Connect(context.Background(), link.Config{
		URL: url, TokenFile: filepath.Join(dir, "token"), Timeout: 20 * time.Second,
	}, quiet)
	srv := <-started
	if srv != nil {
		defer srv.Shutdown()
	}
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	nc.Close()
}

func TestConnectFailures(t *testing.T) {
	srv, err := broker.Start(broker.Config{URL: "nats://127.0.0.1:0", StoreDir: t.TempDir()}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	start := time.Now()
	_, err = link.Connect(context.Background(), link.Config{URL: srv.ClientURL(), Token: "wrong", Timeout: 20 * time.Second}, quiet)
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("wrong token: err %v, want nats.ErrAuthorization", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("wrong token was retried until the timeout; it must fail at once")
	}
	_, err = link.Connect(context.Background(), link.Config{URL: "nats://" + natstest.FixedAddr(t), Timeout: 600 * time.Millisecond}, quiet)
	if !errors.Is(err, link.ErrUnreachable) {
		t.Errorf("no broker: err %v, want ErrUnreachable", err)
	}
}

// A store encrypted with one key does not open with another, or with
// none, and one written in the clear does not open with a key: the broker
// refuses to start, naming the store, where nats-server alone would start
// with the encrypted streams left out. The right key finds every message.
func TestStoreKey(t *testing.T) {
	dir := t.TempDir()
	start := func(key string) (*broker.Server, error) {
		return broker.Start(broker.Config{URL: "nats://127.0.0.1:0", StoreDir: dir, Token: natstest.Token, StoreKey: key},
			slog.New(slog.DiscardHandler))
	}
	srv, err := start("key-one")
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.ClientURL(), nats.Token(natstest.Token))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "s", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	srv.Shutdown()
	for _, key := range []string{"key-two", ""} {
		if srv, err := start(key); !errors.Is(err, broker.ErrStoreKey) || !strings.Contains(err.Error(), dir) {
			if srv != nil {
				srv.Shutdown()
			}
			t.Errorf("start with key %q: %v, want ErrStoreKey naming the store", key, err)
		}
	}
	srv, err = start("key-one")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err = nats.Connect(srv.ClientURL(), nats.Token(natstest.Token))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ = jetstream.New(nc)
	s, err := js.Stream(ctx, "S")
	if err != nil || s.CachedInfo().State.Msgs != 1 {
		t.Fatalf("stream under the right key: %v; want its 1 message", err)
	}

	plain := t.TempDir()
	p, err := broker.Start(broker.Config{URL: "nats://127.0.0.1:0", StoreDir: plain, Token: natstest.Token}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	pc, _ := nats.Connect(p.ClientURL(), nats.Token(natstest.Token))
	pjs, _ := jetstream.New(pc)
	if _, err := pjs.CreateStream(ctx, jetstream.StreamConfig{Name: "P", Subjects: []string{"p"}}); err != nil {
		t.Fatal(err)
	}
	pc.Close()
	p.Shutdown()
	if _, err := broker.Start(broker.Config{URL: "nats://127.0.0.1:0", StoreDir: plain, Token: natstest.Token, StoreKey: "late"},
		slog.New(slog.DiscardHandler)); !errors.Is(err, broker.ErrStoreKey) {
		t.Errorf("a key for a store written in the clear: %v, want ErrStoreKey", err)
	}
}

// Config.SyncAlways and Config.SyncInterval reach JetStream: the running
// server fsyncs before each ack exactly when asked to, and otherwise at
// the interval asked for (nats-server's 2 minutes when none is).
func TestSyncAlways(t *testing.T) {
	for _, tt := range []struct {
		always       bool
		interval     time.Duration
		wantInterval time.Duration
	}{
		{false, 0, 2 * time.Minute},
		{true, 0, 2 * time.Minute},
		{false, time.Second, time.Second},
	} {
		srv, err := broker.Start(broker.Config{URL: "nats://127.0.0.1:0", StoreDir: t.TempDir(), SyncAlways: tt.always, SyncInterval: tt.interval}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		if got := srv.SyncAlways(); got != tt.always {
			t.Errorf("SyncAlways() = %v with Config.SyncAlways %v", got, tt.always)
		}
		if got := srv.SyncInterval(); got != tt.wantInterval {
			t.Errorf("SyncInterval() = %v with Config.SyncInterval %v, want %v", got, tt.interval, tt.wantInterval)
		}
		srv.Shutdown()
	}
}
