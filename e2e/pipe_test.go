package e2e

import (
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func linesWith(out, prefix string) []string {
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			got = append(got, l)
		}
	}
	return got
}

func wantLines(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The seed's Pipe demo: the producer is the sender and spawns the receiver.
func TestPipeDemo(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "nats://127.0.0.1:0")
	p := e.start("producer", "pipe", "--pause", "200ms")
	p.mustExit(0, exitWait)
	wantPipeDemo(t, p.stdout.String())
}

// The other direction: the receiver answers each message.
func TestPipeReply(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "nats://127.0.0.1:0")
	p := e.start("producer", "pipe", "--reply", "--pause", "0s", "--message", "ping", "--message", "pong")
	p.mustExit(0, exitWait)
	wantLines(t, linesWith(p.stdout.String(), "Sender:"), []string{
		"Sender: Sending 'ping'",
		"Sender: Received reply 'Receiver got: ping'",
		"Sender: Sending 'pong'",
		"Sender: Received reply 'Receiver got: pong'",
		"Sender: Closing the connection.",
	})
}

// By hand: the receiver starts after the sender has sent and closed, and
// still gets everything, then EOF. A third process opening a held end is
// refused.
func TestPipeLateReceiverAndThirdOpener(t *testing.T) {
	t.Parallel()
	e := newEnv(t, anyPort).set("PROCQ_CONSUMERS_SPAWN", "false", "PROCQ_BROKER_EMBEDDED", "false")
	b := e.startBroker()
	e.start("producer", "pipe", "--pipe", "late", "--pause", "0s").mustExit(0, exitWait)
	r := e.start("consumer", "pipe", "--pipe", "late")
	r.mustExit(0, exitWait)
	wantLines(t, linesWith(r.stdout.String(), "Receiver:"), []string{
		"Receiver: Waiting for messages...",
		"Receiver: Received 'Hello from sender!'",
		"Receiver: Received 'Another message.'",
		"Receiver: Connection closed by sender.",
	})

	held := e.start("consumer", "pipe", "--pipe", "busy")
	held.waitOutput(regexp.MustCompile(`Receiver: Waiting for messages`), 20*time.Second)
	third := e.start("consumer", "pipe", "--pipe", "busy")
	third.mustExit(1, 20*time.Second)
	if !strings.Contains(third.stderr.String(), "pipe end in use") {
		t.Errorf("third opener stderr %q, want it to say the end is in use", third.stderr)
	}
	held.stop()
	b.stop()
}

// kill -9 of the sender: the receiver fails with the peer-gone error in
// bounded time instead of waiting forever.
func TestPipeSenderKilled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, anyPort).set("PROCQ_CONSUMERS_SPAWN", "false", "PROCQ_BROKER_EMBEDDED", "false",
		"PROCQ_PIPE_PEER_TIMEOUT", "1s")
	b := e.startBroker()
	r := e.start("consumer", "pipe", "--pipe", "doomed")
	s := e.start("producer", "pipe", "--pipe", "doomed", "--pause", "1h")
	r.waitOutput(regexp.MustCompile(`Receiver: Received 'Hello from sender!'`), 30*time.Second)
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	r.mustExit(1, 30*time.Second)
	if !strings.Contains(r.stderr.String(), "pipe peer gone") {
		t.Errorf("receiver stderr %q, want it to say the peer is gone", r.stderr)
	}
	t.Logf("receiver failed %v after the kill (peer timeout 1s)", time.Since(killed).Round(time.Millisecond))
	b.stop()
}
