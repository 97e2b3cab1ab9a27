package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// The broker generates a token into a 0600 file; a client without it, or
// with a wrong one, is refused; a client with it gets in.
func TestBrokerRefusesClientWithoutToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, anyPort)
	b := e.startBroker()
	url := e.url()

	tokenFile := filepath.Join(e.dir, "data", "token")
	fi, err := os.Stat(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("token file mode %v, want 0600", mode)
	}
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nats.Connect(url); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("connect without token: err %v, want an authorization error", err)
	}
	if _, err := nats.Connect(url, nats.Token("wrong")); err == nil {
		t.Errorf("connect with a wrong token succeeded")
	}
	nc, err := nats.Connect(url, nats.Token(strings.TrimSpace(string(token))))
	if err != nil {
		t.Fatalf("connect with the token: %v", err)
	}
	nc.Close()

	// A consumer given a wrong token fails at once with exit 1.
	e.set("PROCQ_BROKER_TOKEN", "wrong")
	start := time.Now()
	wrong := e.start("consumer", "--name", "C-9")
	wrong.mustExit(1, 10*time.Second)
	if !strings.Contains(strings.ToLower(wrong.stderr.String()), "authorization") {
		t.Errorf("consumer with a wrong token: stderr %q does not say authorization", wrong.stderr)
	}
	report(t, row{scenario: "a consumer with a wrong token", exact: !t.Failed(), recover: time.Since(start),
		note: "time to exit 1 saying authorization (no retry loop)"})

	// A consumer whose token file does not exist (run outside the
	// checkout, say) is told so at once, naming both settings, rather than
	// retrying "Authorization Violation" for broker.connect_timeout.
	e.set("PROCQ_BROKER_TOKEN", "", "PROCQ_BROKER_TOKEN_FILE", "/nonexistent/token", "PROCQ_BROKER_CREDENTIALS_DIR", "/nonexistent",
		"PROCQ_BROKER_CONNECT_TIMEOUT", "30s")
	start = time.Now()
	none := e.start("consumer", "--name", "C-10")
	none.mustExit(1, 10*time.Second)
	want := "no token: broker.token is empty and broker.token_file /nonexistent/token does not exist"
	if msg := strings.TrimSpace(none.stderr.String()); !strings.Contains(msg, want) || strings.Contains(msg, "\n") {
		t.Errorf("consumer without a token file: stderr %q, want one line saying %q", msg, want)
	}
	report(t, row{scenario: "a consumer whose token file is missing", exact: !t.Failed(), recover: time.Since(start),
		note: "time to exit 1 saying no token (no retry loop)"})
	b.stop()
}

// A second broker on the same store directory is refused with a clear
// error, and the first keeps serving.
func TestSecondBrokerOnSameStoreRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, anyPort)
	b1 := e.startBroker()
	e2 := newEnv(t, anyPort)
	e2.dir = e.dir
	e2.vars["PROCQ_BROKER_STORE_DIR"] = e.vars["PROCQ_BROKER_STORE_DIR"]
	b2 := e2.start("broker")
	b2.mustExit(1, 20*time.Second)
	if want := "is in use by another broker"; !strings.Contains(b2.stderr.String(), want) {
		t.Errorf("second broker stderr %q, want it to say %q", b2.stderr, want)
	}
	if !b1.running() {
		t.Fatal("first broker stopped")
	}
	report(t, row{scenario: "a second broker on the same store", exact: !t.Failed(),
		note: "refused, exit 1, naming the holder's pid; the first keeps serving"})
	b1.stop()
}

// A broker whose port is taken fails at once and says so.
func TestBrokerPortInUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, anyPort)
	b1 := e.startBroker()
	other := newEnv(t, e.url())
	b2 := other.start("broker")
	b2.mustExit(1, 20*time.Second)
	if !strings.Contains(b2.stderr.String(), "in use") {
		t.Errorf("stderr %q does not say the port is in use", b2.stderr)
	}
	b1.stop()
}

// "broker status" lists the streams and the queue.
func TestBrokerStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t, anyPort).set("PROCQ_CONSUMERS_SPAWN", "false", "PROCQ_BROKER_EMBEDDED", "false",
		"PROCQ_QUEUE_MESSAGES", "3", "PROCQ_QUEUE_NAME", "jobs")
	b := e.startBroker()
	e.start("producer", "queue").mustExit(0, exitWait)
	s := e.start("broker", "status")
	s.mustExit(0, 20*time.Second)
	out := s.stdout.String()
	// Three messages and two sentinels wait on queue jobs; nothing in flight.
	if !regexp.MustCompile(`(?m)^PROCQ_TASKS\s+5\s`).MatchString(out) {
		t.Errorf("status does not show 5 messages in PROCQ_TASKS:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^jobs\s+5\s+0\s`).MatchString(out) {
		t.Errorf("status does not show queue jobs with 5 pending, 0 in flight:\n%s", out)
	}
	b.stop()
}
