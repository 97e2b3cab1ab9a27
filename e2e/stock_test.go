package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The same executables against a stock nats-server that procq did not start,
// configured by the shipped deploy/nats-server.conf: the queue, pool and pipe
// demos, each as real processes, with the embedded broker off.
func TestStockNATSServer(t *testing.T) {
	t.Parallel()
	srv := startStockServer(t)
	world := func(t *testing.T) *env {
		return newEnv(t, srv.url).set(
			"PROCQ_BROKER_EMBEDDED", "false",
			"PROCQ_BROKER_TOKEN", srv.token)
	}
	const timeout = 30 * time.Second

	t.Run("queue", func(t *testing.T) {
		e := world(t)
		p := e.start("producer", "queue")
		p.mustExit(0, timeout)
		wantQueueDemo(t, p.stdout.String())
		noEmbeddedBroker(t, e)
	})

	t.Run("pool", func(t *testing.T) {
		e := world(t)
		p := e.start("producer", "pool", "--kind", "square", "--inputs", "1..200",
			"--processes", "2", "--sleep", "10ms")
		p.mustExit(0, timeout)
		out := p.stdout.String()
		wantSquares(t, out, 200)
		if !regexp.MustCompile(`(?m)^Pool: mapping square over 200 inputs with 2 consumer processes, chunk size \d+$`).MatchString(out) {
			t.Errorf("no mapping line in:\n%s", out)
		}
		if !regexp.MustCompile(`(?m)^Pool: 200 results in input order, 0 failed, in \d+\.\d{3} s`).MatchString(out) {
			t.Errorf("no summary line in:\n%s", out)
		}
		if sc := sentinelCount(out); sc["C-1"] != 1 || sc["C-2"] != 1 || len(sc) != 2 {
			t.Errorf("sentinels taken %v, want C-1 and C-2 once each", sc)
		}
		noEmbeddedBroker(t, e)
	})

	t.Run("pipe", func(t *testing.T) {
		e := world(t)
		p := e.start("producer", "pipe", "--pause", "200ms")
		p.mustExit(0, timeout)
		wantPipeDemo(t, p.stdout.String())
		noEmbeddedBroker(t, e)
	})

	// The demos' streams and buckets live on the stock server, and its
	// token is enforced.
	if _, err := nats.Connect(srv.url, nats.Token("wrong"), nats.NoReconnect()); err == nil {
		t.Errorf("stock server accepted a wrong token")
	}
	nc, err := nats.Connect(srv.url, nats.Token(srv.token), nats.NoReconnect())
	if err != nil {
		t.Fatalf("connect to the stock server: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	streams := map[string]uint64{}
	for name := range js.StreamNames(ctx).Name() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		streams[name] = s.CachedInfo().State.Msgs
	}
	t.Logf("streams on the stock server (messages left): %v", streams)
	for _, want := range []string{"PROCQ_TASKS", "PROCQ_RESULTS", "PROCQ_PIPES", "KV_PROCQ_RUNS", "KV_PROCQ_CONSUMERS", "KV_PROCQ_PIPE_ENDS"} {
		if _, ok := streams[want]; !ok {
			t.Errorf("stock server has no stream %s", want)
		}
	}
	if nc.MaxPayload() != 1<<20 {
		t.Errorf("stock server max payload %d, want the default 1 MiB", nc.MaxPayload())
	}
}

// noEmbeddedBroker checks that the world's producer hosted no broker.
func noEmbeddedBroker(t *testing.T, e *env) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, "logs", "producer.log"))
	if err != nil {
		t.Fatalf("producer log: %v", err)
	}
	if strings.Contains(string(b), "embedded broker started") {
		t.Errorf("the producer started an embedded broker")
	}
}

// stockServer is a nats-server process started from the shipped config.
type stockServer struct {
	url   string // nats://127.0.0.1:<port>
	token string
}

var (
	natsServerOnce sync.Once
	natsServerBin  string
	natsServerErr  error
)

// buildNATSServer builds the stock nats-server (the module procq already
// depends on) once per test binary, beside the procq executables.
func buildNATSServer(t *testing.T) string {
	t.Helper()
	natsServerOnce.Do(func() {
		bin := filepath.Join(binDir, "nats-server")
		build := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
		build.Dir = ".." // the repository root: procq's go.mod pins the version
		out, err := build.CombinedOutput()
		if err != nil {
			natsServerErr = fmt.Errorf("build nats-server: %v\n%s", err, out)
			return
		}
		natsServerBin = bin
	})
	if natsServerErr != nil {
		t.Fatal(natsServerErr)
	}
	return natsServerBin
}

var serverListeningRE = regexp.MustCompile(`Listening for client connections on (127\.0\.0\.1:\d+)`)

// startStockServer runs nats-server with deploy/nats-server.conf, its port
// (picked by the server), store dir and token substituted, and stops it with
// SIGTERM when the test ends.
func startStockServer(t *testing.T) stockServer {
	t.Helper()
	shipped, err := os.ReadFile("../deploy/nats-server.conf")
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	token := hex.EncodeToString(b)
	dir := t.TempDir()
	conf := string(shipped)
	for _, sub := range []struct{ re, repl string }{
		{`(?m)^listen: 127\.0\.0\.1:4222$`, `listen: 127.0.0.1:-1`}, // RANDOM_PORT
		{`(?m)^(\s*)store_dir: .*$`, `${1}store_dir: ` + strconv.Quote(filepath.Join(dir, "store"))},
		{`(?m)^(\s*)token: .*$`, `${1}token: ` + strconv.Quote(token)},
	} {
		re := regexp.MustCompile(sub.re)
		if n := len(re.FindAllString(conf, -1)); n != 1 {
			t.Fatalf("deploy/nats-server.conf matches %s %d times, want once", sub.re, n)
		}
		conf = re.ReplaceAllString(conf, sub.repl)
	}
	return stockServer{url: runNATSServer(t, dir, conf), token: token}
}

// runNATSServer runs the stock nats-server with conf in dir until the test
// ends (SIGTERM), and returns its client URL once it is ready.
func runNATSServer(t *testing.T, dir, conf string) string {
	t.Helper()
	bin := buildNATSServer(t)
	confPath := filepath.Join(dir, "nats-server.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "-c", confPath)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} // gone with the test binary
	var out syncBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("nats-server after SIGTERM: %v", err)
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("nats-server did not exit within 15s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("--- nats-server log:\n%s", out.String())
		}
	})

	deadline := time.Now().Add(20 * time.Second)
	for {
		s := out.String()
		if m := serverListeningRE.FindStringSubmatch(s); m != nil && strings.Contains(s, "Server is ready") {
			return "nats://" + m[1]
		}
		select {
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("nats-server exited before it was ready (%v):\n%s", err, s)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server not ready within 20s:\n%s", s)
		}
	}
}
