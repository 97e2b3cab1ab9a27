package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
)

const exitWait = 60 * time.Second

// Spawn mode: the producer hosts the broker, starts two consumer processes,
// puts ten messages and two sentinels, and joins its children.
func TestQueueSpawnTwoConsumers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "nats://127.0.0.1:0")
	p := e.start("producer", "queue")
	p.mustExit(0, exitWait)
	wantQueueDemo(t, p.stdout.String())
	for _, f := range []string{"producer.log", "consumer-C-1.log", "consumer-C-2.log"} {
		b, err := os.ReadFile(filepath.Join(e.dir, "logs", f))
		if err != nil {
			t.Fatalf("log file: %v", err)
		}
		if !regexp.MustCompile(`(?m)^time=\S+ level=INFO msg=.* role=\w+ name=\S+ pid=\d+`).Match(b) {
			t.Errorf("%s has no line with time, level, role, name and pid:\n%s", f, b)
		}
	}
}

// By hand: consumers start before the broker, then the broker, then the
// producer, each a separate process.
func TestQueueByHandConsumersFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fixedURL(t)).set("PROCQ_CONSUMERS_SPAWN", "false", "PROCQ_BROKER_EMBEDDED", "false")
	c1 := e.start("consumer", "--name", "C-1")
	c2 := e.start("consumer", "--name", "C-2")
	c1.waitOutput(regexp.MustCompile(`waiting for broker`), 20*time.Second)
	b := e.startBroker()
	p := e.start("producer", "queue")
	p.mustExit(0, exitWait)
	c1.mustExit(0, exitWait)
	c2.mustExit(0, exitWait)

	checkExactlyOnce(t, 10, c1.stdout.String(), c2.stdout.String())
	if sc := sentinelCount(c1.stdout.String(), c2.stdout.String()); sc["C-1"] != 1 || sc["C-2"] != 1 {
		t.Errorf("sentinels taken %v, want C-1 and C-2 once each", sc)
	}
	if n := len(gots(p.stdout.String())); n != 0 {
		t.Errorf("producer printed %d consumer lines with spawning off", n)
	}
	b.stop()
}

// A consumer killed with kill -9 while it holds a message: the message is
// redelivered after the ack wait and processed by the live consumer before it
// takes its sentinel; every live process exits 0. Each message takes 1.5s,
// so the kill, sent as soon as C-2 prints that it got one, lands while it
// holds it.
func TestQueueKilledConsumerMessageIsRedelivered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, anyPort).set(
		"PROCQ_CONSUMERS_SPAWN", "false", "PROCQ_BROKER_EMBEDDED", "false",
		"PROCQ_QUEUE_ACK_WAIT", "1s", "PROCQ_QUEUE_MESSAGES", "4",
		"PROCQ_CONSUMERS_WORK_MIN", "1500ms", "PROCQ_CONSUMERS_WORK_MAX", "1500ms")
	b := e.startBroker()
	c1 := e.start("consumer", "--name", "C-1")
	c2 := e.start("consumer", "--name", "C-2")
	p := e.start("producer", "queue")

	held := c2.waitOutput(regexp.MustCompile(`Consumer C-2: Got 'Message \d+' from queue`), 30*time.Second)
	if err := c2.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := c2.wait(10 * time.Second); code != -1 {
		t.Fatalf("killed consumer exit code %d, want -1 (signal)", code)
	}
	p.mustExit(0, exitWait)
	c1.mustExit(0, exitWait)

	idx, _ := strconv.Atoi(gotRE.FindStringSubmatch(held)[2])
	c1Got := gots(c1.stdout.String())
	all := gots(c1.stdout.String(), c2.stdout.String())
	for i := range 4 {
		if len(all[i]) == 0 {
			t.Errorf("Message %d was never got", i)
		}
	}
	if len(c1Got[idx]) != 1 {
		t.Errorf("held Message %d got by C-1 %d times, want once after redelivery", idx, len(c1Got[idx]))
	}
	if sc := sentinelCount(c1.stdout.String()); sc["C-1"] != 1 {
		t.Errorf("C-1 took %d sentinels, want 1", sc["C-1"])
	}
	b.stop()
}

// A sentinel left over from an earlier run (three sentinels, two consumers)
// does not stop a later run's consumers, even when they start before that
// run's producer.
func TestQueueStaleSentinelIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t, anyPort).set("PROCQ_CONSUMERS_SPAWN", "false", "PROCQ_BROKER_EMBEDDED", "false",
		"PROCQ_QUEUE_MESSAGES", "4")
	b := e.startBroker()

	// Run 1: three sentinels, two consumers: one sentinel is left over.
	// The consumers are up before the run starts: one that came up after
	// the producer had put everything would take the run for over, and
	// its sentinels for stale, and wait for the next run.
	a1 := e.start("consumer", "--name", "C-1")
	a2 := e.start("consumer", "--name", "C-2")
	for _, n := range []string{"C-1", "C-2"} {
		e.waitLog("consumer-"+n+".log", regexp.MustCompile(`msg="consumer started"`), 30*time.Second)
	}
	p1 := e.start("producer", "queue", "--consumers", "3")
	p1.mustExit(0, exitWait)
	a1.mustExit(0, exitWait)
	a2.mustExit(0, exitWait)
	checkExactlyOnce(t, 4, a1.stdout.String(), a2.stdout.String())

	// Run 2: the consumers start first and meet the leftover sentinel.
	c1 := e.start("consumer", "--name", "C-1")
	c2 := e.start("consumer", "--name", "C-2")
	stale := regexp.MustCompile(`dropped stale sentinel`)
	deadline := time.Now().Add(20 * time.Second)
	for !stale.MatchString(c1.stderr.String()+c2.stderr.String()) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !stale.MatchString(c1.stderr.String() + c2.stderr.String()) {
		t.Fatalf("no consumer reported the stale sentinel")
	}
	if !c1.running() || !c2.running() {
		t.Fatalf("a consumer exited on a stale sentinel: C-1 running %v, C-2 running %v", c1.running(), c2.running())
	}
	p2 := e.start("producer", "queue", "--consumers", "2")
	p2.mustExit(0, exitWait)
	c1.mustExit(0, exitWait)
	c2.mustExit(0, exitWait)
	checkExactlyOnce(t, 4, c1.stdout.String(), c2.stdout.String())
	if sc := sentinelCount(c1.stdout.String(), c2.stdout.String()); sc["C-1"] != 1 || sc["C-2"] != 1 {
		t.Errorf("run 2 sentinels taken %v (%v), want C-1 and C-2 once each", sc, keys(sc))
	}
	b.stop()
}

// kill -9 of the broker mid-run, then a restart on the same store: clients
// reconnect, the file store kept the queue, and the run completes with every
// message processed; only messages in flight at the crash (at most two per
// consumer: one in hand, one prefetched) may be processed twice, the
// at-least-once promise.
func TestQueueSurvivesBrokerRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, anyPort).set("PROCQ_CONSUMERS_SPAWN", "false", "PROCQ_BROKER_EMBEDDED", "false",
		"PROCQ_QUEUE_MESSAGES", "20", "PROCQ_QUEUE_PAUSE_MIN", "100ms", "PROCQ_QUEUE_PAUSE_MAX", "100ms",
		"PROCQ_CONSUMERS_WORK_MIN", "50ms", "PROCQ_CONSUMERS_WORK_MAX", "50ms")
	b := e.startBroker()
	c1 := e.start("consumer", "--name", "C-1")
	c2 := e.start("consumer", "--name", "C-2")
	p := e.start("producer", "queue")
	p.waitOutput(regexp.MustCompile(`Producer: Putting 'Message 5' on queue`), 30*time.Second)
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b.wait(10 * time.Second)
	time.Sleep(time.Second) // an outage the clients must ride out
	b2 := e.startBroker()
	p.mustExit(0, exitWait)
	c1.mustExit(0, exitWait)
	c2.mustExit(0, exitWait)
	g := gots(c1.stdout.String(), c2.stdout.String())
	twice := 0
	for i := range 20 {
		switch n := len(g[i]); {
		case n == 0:
			t.Errorf("Message %d was lost", i)
		case n > 2:
			t.Errorf("Message %d got %d times", i, n)
		case n == 2:
			twice++
		}
	}
	if twice > 4 {
		t.Errorf("%d messages processed twice, want at most the 4 in flight at the crash", twice)
	}
	if sc := sentinelCount(c1.stdout.String(), c2.stdout.String()); sc["C-1"] != 1 || sc["C-2"] != 1 {
		t.Errorf("sentinels %v, want one each", sc)
	}
	b2.stop()
}
