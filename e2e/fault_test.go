package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
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
	"github.com/procq/procq/protocol"
)

// The fault suite: each test runs the real executables through one fault
// and reports a row of RELIABILITY.md. With RELIABILITY_OUT=<file> set, the
// rows are appended to that file (make reliability).

// row is one line of the reliability table.
type row struct {
	scenario  string
	submitted int
	results   int  // results the producer printed (or tasks got, for the queue)
	exact     bool // every result present once, correct, in order
	dupes     int  // duplicate answers the producer dropped
	dead      int  // messages in PROCQ_DEAD
	lost      int  // submitted inputs with no result and not named unfinished
	recover   time.Duration
	note      string
}

var reportMu sync.Mutex

func report(t *testing.T, r row) {
	t.Helper()
	exact := "yes"
	if !r.exact {
		exact = "no"
	}
	line := fmt.Sprintf("| %s | %d | %d | %s | %d | %d | %d | %.1f | %s |",
		r.scenario, r.submitted, r.results, exact, r.dupes, r.dead, r.lost, r.recover.Seconds(), r.note)
	t.Log(line)
	if r.lost != 0 {
		t.Errorf("%s: %d inputs lost", r.scenario, r.lost)
	}
	appendRow(t, "RELIABILITY_OUT", line)
}

// appendRow appends a table's line to the file the environment variable
// names, if it is set: make reliability gathers the rows of every test.
func appendRow(t *testing.T, variable, line string) {
	t.Helper()
	path := os.Getenv(variable)
	if path == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("%s table: %v", variable, err)
		return
	}
	defer f.Close()
	fmt.Fprintln(f, line)
}

// faultEnv is a world with a standalone broker on a free port, spawned
// consumers, debug logs (to count dropped duplicates) and a short lease.
func faultEnv(t *testing.T, kv ...string) (*env, *proc) {
	t.Helper()
	e := newEnv(t, anyPort).set("PROCQ_BROKER_EMBEDDED", "false", "PROCQ_LOG_LEVEL", "debug",
		"PROCQ_QUEUE_ACK_WAIT", "2s", "PROCQ_CONSUMERS_MAX_RESTARTS", "50")
	e.set(kv...)
	return e, e.startBroker()
}

// js connects the test itself to the world's broker.
func (e *env) js(t *testing.T) jetstream.JetStream {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(e.vars["PROCQ_BROKER_STORE_DIR"], "token"))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(e.url(), nats.Token(strings.TrimSpace(string(token))), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// streamMsgs counts the messages a stream holds.
func streamMsgs(t *testing.T, js jetstream.JetStream, name string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return int(info.State.Msgs)
}

// logCount counts the lines of a log file that match re.
func (e *env) logCount(name string, re *regexp.Regexp) int {
	b, _ := os.ReadFile(filepath.Join(e.dir, "logs", name))
	return len(re.FindAll(b, -1))
}

var dupRE = regexp.MustCompile(`msg="duplicate result ignored"`)

var squareRE = regexp.MustCompile(`(?m)^square\((\d+)\) = (\d+)$`)

// squareResults checks square(1..n) in the output: it reports how many
// results there were and whether they were exact (each once, correct, in
// input order).
func squareResults(out string, n int) (results int, exact bool) {
	ms := squareRE.FindAllStringSubmatch(out, -1)
	exact = len(ms) == n
	for i, m := range ms {
		x, _ := strconv.Atoi(m[1])
		y, _ := strconv.Atoi(m[2])
		if x != i+1 || y != x*x {
			exact = false
		}
	}
	return len(ms), exact
}

// squares starts "producer pool" mapping square over 1..n on the given
// number of consumer processes, with more flags.
func (e *env) squares(processes, n int, flags ...string) *proc {
	e.t.Helper()
	args := append([]string{"pool", "--processes", strconv.Itoa(processes), "--kind", "square",
		"--inputs", "1.." + strconv.Itoa(n)}, flags...)
	return e.start("producer", args...)
}

// stall is the longest wait, after any of the faults, for the next result.
func stall(out *syncBuf, faults []time.Time) time.Duration {
	var worst time.Duration
	for _, f := range faults {
		next := out.firstAfter(f, squareRE)
		if next.IsZero() {
			continue
		}
		worst = max(worst, next.Sub(f))
	}
	return worst
}

// consumerPIDs finds the pids of the consumer processes running now in
// this world (children of the producer p).
func consumerPIDs(p *proc) []int {
	out, _ := exec.Command("pgrep", "-P", strconv.Itoa(p.cmd.Process.Pid)).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Consumers are killed with kill -9 every 300ms during a 20,000-input
// map; each is replaced, what it held is handed back at once, and every
// result arrives exactly once, in order.
func TestFaultConsumersKilledRepeatedly(t *testing.T) {
	t.Parallel()
	const n = 20000
	e, b := faultEnv(t, "PROCQ_LOG_LEVEL", "info")
	p := e.squares(2, n, "--sleep", "0s", "--chunk-size", "1")
	p.waitOutput(regexp.MustCompile(`(?m)^square\(100\) = `), 60*time.Second)
	var faults []time.Time
	for p.running() && len(faults) < 30 {
		if pids := consumerPIDs(p); len(pids) > 0 {
			_ = syscall.Kill(pids[rand.IntN(len(pids))], syscall.SIGKILL)
			faults = append(faults, time.Now())
		}
		time.Sleep(300 * time.Millisecond)
	}
	p.mustExit(0, 3*exitWait)
	results, exact := squareResults(p.stdout.String(), n)
	report(t, row{scenario: fmt.Sprintf("%d consumers killed (kill -9) during a %d-input map", len(faults), n),
		submitted: n, results: results, exact: exact, dupes: e.logCount("producer.log", dupRE),
		dead: streamMsgs(t, e.js(t), protocol.DeadStream), lost: n - results,
		recover: stall(p.stdout, faults), note: "longest wait for the next result after a kill"})
	if !exact {
		t.Errorf("results not exact")
	}
	if len(faults) < 3 {
		t.Errorf("only %d kills landed", len(faults))
	}
	b.stop()
}

// Every consumer dies and none may be replaced: the map fails within
// seconds, exit 1, naming every unfinished input, instead of waiting.
func TestFaultAllConsumersDead(t *testing.T) {
	t.Parallel()
	const n = 200
	e, b := faultEnv(t, "PROCQ_CONSUMERS_MAX_RESTARTS", "0")
	p := e.squares(2, n, "--sleep", "100ms", "--chunk-size", "1")
	p.waitOutput(regexp.MustCompile(`(?m)^square\(1\) = 1$`), 60*time.Second)
	for _, pid := range consumerPIDs(p) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	killed := time.Now()
	p.mustExit(1, exitWait)
	took := time.Since(killed)
	m := regexp.MustCompile(`map stopped with (\d+) inputs unfinished \((\d+)-199\).*no live consumer`).FindStringSubmatch(p.stderr.String())
	if m == nil {
		t.Fatalf("stderr does not name the unfinished inputs and the cause:\n%s", p.stderr)
	}
	unfinished, _ := strconv.Atoi(m[1])
	results, _ := squareResults(p.stdout.String(), n)
	report(t, row{scenario: "every consumer killed, no restarts left", submitted: n, results: results,
		exact: results+unfinished == n, dead: streamMsgs(t, e.js(t), protocol.DeadStream),
		lost: n - results - unfinished, recover: took, note: "time from the kills to exit 1 naming the unfinished inputs"})
	if took > 15*time.Second {
		t.Errorf("the map took %v to fail, want seconds", took)
	}
	b.stop()
}

// The broker is killed with kill -9 three times during a pool map and
// restarted on the same store: the map completes, exactly.
func TestFaultBrokerKilledThrice(t *testing.T) {
	t.Parallel()
	const n = 3000
	e, b := faultEnv(t, "PROCQ_BROKER_CONNECT_TIMEOUT", "60s")
	p := e.squares(2, n, "--sleep", "2ms", "--chunk-size", "1")
	var faults []time.Time
	for i := range 3 {
		p.waitOutput(regexp.MustCompile(fmt.Sprintf(`(?m)^square\(%d\) = `, 300+i*800)), 2*exitWait)
		if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		b.wait(10 * time.Second)
		faults = append(faults, time.Now())
		time.Sleep(500 * time.Millisecond)
		b = e.startBroker()
	}
	p.mustExit(0, 3*exitWait)
	results, exact := squareResults(p.stdout.String(), n)
	report(t, row{scenario: "broker killed (kill -9) and restarted 3 times during a map", submitted: n,
		results: results, exact: exact, dupes: e.logCount("producer.log", dupRE),
		dead: streamMsgs(t, e.js(t), protocol.DeadStream), lost: n - results,
		recover: stall(p.stdout, faults), note: "longest wait for the next result after a kill, 0.5 s outage included"})
	if !exact {
		t.Errorf("results not exact")
	}
	b.stop()
}

// A consumer frozen with SIGSTOP past its lease: what it held is
// redelivered to the other consumer; when it thaws, its late answers are
// dropped as duplicates.
func TestFaultConsumerFrozen(t *testing.T) {
	t.Parallel()
	const n = 60
	e, b := faultEnv(t)
	p := e.squares(2, n, "--sleep", "100ms", "--chunk-size", "1")
	p.waitOutput(regexp.MustCompile(`(?m)^square\(5\) = `), 60*time.Second)
	pids := consumerPIDs(p)
	if len(pids) == 0 {
		t.Fatal("no consumer to freeze")
	}
	_ = syscall.Kill(pids[0], syscall.SIGSTOP)
	frozen := time.Now()
	time.Sleep(5 * time.Second) // past the 2s lease
	_ = syscall.Kill(pids[0], syscall.SIGCONT)
	p.mustExit(0, exitWait)
	results, exact := squareResults(p.stdout.String(), n)
	report(t, row{scenario: "a consumer frozen (SIGSTOP) for 5 s, past its 2 s lease", submitted: n,
		results: results, exact: exact, dupes: e.logCount("producer.log", dupRE),
		dead: streamMsgs(t, e.js(t), protocol.DeadStream), lost: n - results,
		recover: stall(p.stdout, []time.Time{frozen}), note: "longest wait for the next result after the freeze"})
	if !exact {
		t.Errorf("results not exact")
	}
	b.stop()
}

// The race of a consumer killed after the sentinels are out, swept over
// its timing window: one message of 1.5 s, two spawned consumers, the idle
// one killed at several moments around the end of the work. Every run
// ends, exit 0.
func TestFaultKilledAfterSentinels(t *testing.T) {
	t.Parallel()
	offsets := []time.Duration{1100, 1300, 1400, 1500, 1700}
	worst := time.Duration(0)
	for _, off := range offsets {
		off *= time.Millisecond
		e := newEnv(t, "nats://127.0.0.1:0").set("PROCQ_QUEUE_MESSAGES", "1",
			"PROCQ_QUEUE_PAUSE_MIN", "0s", "PROCQ_QUEUE_PAUSE_MAX", "0s",
			"PROCQ_CONSUMERS_WORK_MIN", "1500ms", "PROCQ_CONSUMERS_WORK_MAX", "1500ms")
		p := e.start("producer", "queue")
		got := p.waitOutput(regexp.MustCompile(`Consumer (C-\d): Got 'Message 0'`), 60*time.Second)
		busy := regexp.MustCompile(`C-\d`).FindString(got)
		idle := "C-1"
		if busy == "C-1" {
			idle = "C-2"
		}
		time.Sleep(off)
		_ = syscall.Kill(childPID(t, e, idle), syscall.SIGKILL)
		killed := time.Now()
		p.mustExit(0, 30*time.Second)
		worst = max(worst, time.Since(killed))
		checkExactlyOnce(t, 1, p.stdout.String())
	}
	report(t, row{scenario: fmt.Sprintf("idle consumer killed after the sentinels, %d timings from 1.1 to 1.7 s", len(offsets)),
		submitted: len(offsets), results: len(offsets), exact: !t.Failed(), recover: worst,
		note: "longest time from the kill to the producer's exit 0"})
}

// Poison of every kind is mixed into a running map: each is dead-lettered
// once with its reason, and the map completes exactly.
func TestFaultPoisonMixedIntoMap(t *testing.T) {
	t.Parallel()
	const n = 2000
	e, b := faultEnv(t)
	p := e.squares(2, n, "--sleep", "1ms", "--chunk-size", "1")
	p.waitOutput(regexp.MustCompile(`(?m)^square\(10\) = `), 60*time.Second)
	js := e.js(t)
	ws := protocol.WorkSubject("demo", "outside")
	poison := []struct {
		subject string
		hdr     map[string]string
		body    string
	}{
		{ws, nil, "no kind"},
		{ws, map[string]string{protocol.HeaderKind: "nope"}, "{}"},
		{ws, map[string]string{protocol.HeaderKind: "square"}, `{"x":"two"}`},
		{ws, map[string]string{protocol.HeaderKind: "square", protocol.HeaderChunk: "3"}, `[{"x":1}]`},
		{ws, map[string]string{protocol.HeaderKind: "square", protocol.HeaderReply: "procq.nowhere.at.all", protocol.HeaderIndex: "0"}, `{"x":2}`},
		{ws, map[string]string{protocol.HeaderKind: "square", protocol.HeaderReply: protocol.ResultSubject("outside")}, `{"x":3}`},
		{ws, map[string]string{protocol.HeaderKind: "sumsquares"}, `null`},
		{protocol.SentinelSubject("demo"), map[string]string{protocol.HeaderRun: "x"}, "not a sentinel"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, pm := range poison {
		m := &nats.Msg{Subject: pm.subject, Data: []byte(pm.body), Header: nats.Header{}}
		for k, v := range pm.hdr {
			m.Header.Set(k, v)
		}
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	p.mustExit(0, exitWait)
	results, exact := squareResults(p.stdout.String(), n)
	dead := streamMsgs(t, js, protocol.DeadStream)
	report(t, row{scenario: fmt.Sprintf("%d poison messages of every kind mixed into a map", len(poison)),
		submitted: n, results: results, exact: exact, dupes: e.logCount("producer.log", dupRE),
		dead: dead, lost: n - results, note: "each poison message dead-lettered once"})
	if !exact {
		t.Errorf("results not exact")
	}
	if dead != len(poison) {
		t.Errorf("%d dead letters, want %d", dead, len(poison))
	}
	b.stop()
}

// One chunk whose result (1.3 MB) is over the broker's 1 MiB limit: the
// answer travels in parts and the map completes, exactly.
func TestFaultOversizeChunk(t *testing.T) {
	t.Parallel()
	const n = 60000
	e := newEnv(t, "nats://127.0.0.1:0")
	start := time.Now()
	p := e.squares(1, n, "--chunk-size", strconv.Itoa(n), "--sleep", "0s")
	p.mustExit(0, exitWait)
	results, exact := squareResults(p.stdout.String(), n)
	report(t, row{scenario: "one 60,000-input chunk whose result is over the 1 MiB max payload", submitted: n,
		results: results, exact: exact, lost: n - results, recover: time.Since(start),
		note: "whole run; the answer travels in parts"})
	if !exact {
		t.Errorf("results not exact")
	}
}

// A queue capped at 20 messages takes 100: puts wait for room, nothing
// fails or is dropped. The two consumers take 50 ms a message (40 a
// second between them), slower than the producer puts however busy the
// machine, so the queue fills.
func TestFaultFullQueue(t *testing.T) {
	t.Parallel()
	const n = 100
	e := newEnv(t, "nats://127.0.0.1:0").set("PROCQ_QUEUE_MAX_MESSAGES", "20", "PROCQ_QUEUE_MESSAGES", strconv.Itoa(n),
		"PROCQ_QUEUE_PAUSE_MIN", "0s", "PROCQ_QUEUE_PAUSE_MAX", "0s",
		"PROCQ_CONSUMERS_WORK_MIN", "50ms", "PROCQ_CONSUMERS_WORK_MAX", "50ms")
	p := e.start("producer", "queue")
	p.mustExit(0, exitWait)
	checkExactlyOnce(t, n, p.stdout.String())
	got := len(gots(p.stdout.String()))
	report(t, row{scenario: "100 messages put on a queue capped at 20", submitted: n, results: got,
		exact: !t.Failed(), lost: n - got, note: "puts wait for room (queue.put_timeout)"})
	if e.logCount("producer.log", regexp.MustCompile(`msg="queue full, waiting for room"`)) == 0 {
		t.Errorf("the producer never waited for room: the queue was not full")
	}
}

// A producer killed with kill -9 mid-map: its consumers stop (exit 1,
// orphaned), and the next run removes the dead map's tasks and results
// before its consumers start, so nothing of it is computed or kept.
func TestFaultProducerKilledMidMap(t *testing.T) {
	t.Parallel()
	const n = 5000
	e, b := faultEnv(t)
	p := e.squares(2, n, "--sleep", "5ms", "--chunk-size", "1")
	p.waitOutput(regexp.MustCompile(`(?m)^square\(100\) = `), 60*time.Second)
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait(10 * time.Second)
	killed := time.Now()
	js := e.js(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, protocol.RunsBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeysFiltered(ctx, "demo.map.*")
	if err != nil {
		t.Fatal(err)
	}
	var dead string
	for k := range keys.Keys() {
		dead = strings.TrimPrefix(k, "demo.map.")
	}
	if dead == "" {
		t.Fatal("no lease of the killed map")
	}
	left := streamMsgs(t, js, protocol.TasksStream)
	// The orphaned consumers stop and say so.
	orphanRE := regexp.MustCompile(`msg="producer gone; stopped"`)
	deadline := time.Now().Add(20 * time.Second)
	for e.logCount("consumer-C-1.log", orphanRE)+e.logCount("consumer-C-2.log", orphanRE) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := e.logCount("consumer-C-1.log", orphanRE) + e.logCount("consumer-C-2.log", orphanRE); n != 2 {
		for _, name := range []string{"consumer-C-1.log", "consumer-C-2.log", "producer.log"} {
			b, _ := os.ReadFile(filepath.Join(e.dir, "logs", name))
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			t.Logf("%s ends:\n%s", name, strings.Join(lines[max(0, len(lines)-8):], "\n"))
		}
		ps, _ := exec.Command("pgrep", "-af", "consumer --name").Output()
		t.Logf("consumer processes:\n%s", ps)
		t.Errorf("%d orphaned consumers said they stopped, want 2", n)
	}
	sizes := map[string]int64{}
	for _, name := range []string{"consumer-C-1.log", "consumer-C-2.log"} {
		if fi, err := os.Stat(filepath.Join(e.dir, "logs", name)); err == nil {
			sizes[name] = fi.Size()
		}
	}

	started := time.Now()
	p2 := e.start("producer", "pool", "--processes", "2", "--kind", "square", "--inputs", "1..10", "--sleep", "0s")
	p2.mustExit(0, exitWait)
	took := time.Since(killed)
	t.Logf("orphans stopped %.1fs after the kill; the next run took %.1fs", started.Sub(killed).Seconds(), time.Since(started).Seconds())
	if _, exact := squareResults(p2.stdout.String(), 10); !exact {
		t.Errorf("second run's results not exact:\n%s", p2.stdout)
	}
	computed := 0
	for name, from := range sizes {
		b, _ := os.ReadFile(filepath.Join(e.dir, "logs", name))
		computed += strings.Count(string(b[from:]), "run="+dead)
	}
	tasksLeft, resultsLeft := streamMsgs(t, js, protocol.TasksStream), streamMsgs(t, js, protocol.ResultsStream)
	report(t, row{scenario: "producer killed (kill -9) mid-map, then run again", submitted: n,
		results: strings.Count(p.stdout.String(), "\n") - 1, exact: computed == 0 && tasksLeft == 0 && resultsLeft == 0,
		dead: streamMsgs(t, js, protocol.DeadStream), recover: took,
		note: fmt.Sprintf("%d queued tasks of the dead map removed, 0 computed, 0 left; time to the next run's exit 0", left)})
	if computed != 0 {
		t.Errorf("the next run's consumers computed %d log lines of the dead map's tasks, want 0", computed)
	}
	if tasksLeft != 0 || resultsLeft != 0 {
		t.Errorf("left in the broker: %d tasks, %d results, want none", tasksLeft, resultsLeft)
	}
	b.stop()
}

// waitLog waits until a log file of the world has a line matching re.
func (e *env) waitLog(name string, re *regexp.Regexp, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for e.logCount(name, re) == 0 {
		if time.Now().After(deadline) {
			e.t.Fatalf("%s has no line matching %q within %v", name, re, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A consumer whose broker is gone for good (down longer than
// broker.connect_timeout) exits 1, so a supervisor restarts it.
func TestFaultBrokerGoneForGood(t *testing.T) {
	t.Parallel()
	e, b := faultEnv(t, "PROCQ_BROKER_CONNECT_TIMEOUT", "2s", "PROCQ_CONSUMERS_SPAWN", "false")
	c := e.start("consumer", "--name", "C-1")
	e.waitLog("consumer-C-1.log", regexp.MustCompile(`msg="consumer started"`), 30*time.Second)
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	c.mustExit(1, 30*time.Second)
	if !strings.Contains(c.stderr.String(), "broker connection lost") {
		t.Errorf("stderr %q does not say the broker was lost", c.stderr)
	}
	report(t, row{scenario: "broker gone for good (down > broker.connect_timeout 2 s)", exact: true,
		recover: time.Since(killed), note: "time from the kill to the consumer's exit 1"})
}

// A producer whose standalone broker is killed mid-work and stays away
// longer than broker.connect_timeout exits 1, as its consumers do, naming
// the broker and the setting: a map (instead of reopening its results
// reader on a connection closed for good), and the Queue demo's puts.
func TestFaultProducerBrokerGoneForGood(t *testing.T) {
	t.Parallel()
	const n = 2000
	t.Run("pool", func(t *testing.T) {
		t.Parallel()
		p, took := producerLosesBroker(t, regexp.MustCompile(`square\(20\) = 400`),
			"pool", "--kind", "square", "--inputs", "1.."+strconv.Itoa(n), "--sleep", "5ms", "--chunk-size", "1")
		stderr := p.stderr.String()
		if strings.Contains(stderr, "results consumer not opened; retrying") {
			t.Errorf("the results reader retried on a closed connection:\n%s", stderr)
		}
		results, _ := squareResults(p.stdout.String(), n)
		unfinished, lost := accounted(t, stderr, n, results)
		report(t, row{scenario: "producer: broker gone for good (down > broker.connect_timeout 2 s)", submitted: n,
			results: results, exact: lost == 0, lost: lost, recover: took,
			note: fmt.Sprintf("time from the kill to the producer's exit 1 naming the broker; the %d inputs without a result named unfinished", unfinished)})
	})
	t.Run("queue", func(t *testing.T) {
		t.Parallel()
		producerLosesBroker(t, regexp.MustCompile(`Putting 'Message 5' on queue`),
			"queue", "--messages", strconv.Itoa(n))
	})
}

// producerLosesBroker starts a standalone broker with a 2 s
// broker.connect_timeout, a consumer by hand and "producer args", kills
// the broker once the producer printed ready, and checks that the
// producer exits 1 within seconds naming the broker. It returns the
// producer and the time from the kill to its exit.
func producerLosesBroker(t *testing.T, ready *regexp.Regexp, args ...string) (*proc, time.Duration) {
	t.Helper()
	const timeout = 2 * time.Second
	e, b := faultEnv(t, "PROCQ_BROKER_CONNECT_TIMEOUT", timeout.String(), "PROCQ_CONSUMERS_SPAWN", "false",
		"PROCQ_CONSUMERS_COUNT", "1")
	c := e.start("consumer", "--name", "C-1")
	e.waitLog("consumer-C-1.log", regexp.MustCompile(`msg="consumer started"`), 30*time.Second)
	p := e.start("producer", args...)
	p.waitOutput(ready, 30*time.Second) // mid-work
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	// nats.go gives up after broker.connect_timeout of reconnect attempts;
	// the rest is the producer's cleanup on a closed connection.
	p.mustExit(1, timeout+15*time.Second)
	took := time.Since(killed)
	stderr := p.stderr.String()
	t.Logf("the producer exited 1 %v after the kill: %s", took.Round(time.Millisecond), regexp.MustCompile(`(?m)^producer: .*$`).FindString(stderr))
	for _, want := range []string{"broker connection lost", "the broker at " + e.url(),
		"unreachable for longer than broker.connect_timeout (2s)"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("producer stderr does not say %q:\n%s", want, stderr)
		}
	}
	if took > timeout+10*time.Second {
		t.Errorf("the producer took %v to exit after the kill, want about broker.connect_timeout (%v)", took, timeout)
	}
	// The consumer's exit is TestFaultBrokerGoneForGood's.
	c.wait(30 * time.Second)
	return p, took
}

// accounted checks a failed ordered map of n inputs: the first results
// printed, every other input named unfinished or never submitted, each
// once. It returns how many were named and how many were neither
// printed nor named (lost).
func accounted(t *testing.T, stderr string, n, results int) (named, lost int) {
	t.Helper()
	m := regexp.MustCompile(`map stopped with (\d+) inputs unfinished \(([^)]*)\)(?:, inputs from #(\d+) on never submitted)?`).FindStringSubmatch(stderr)
	if m == nil {
		t.Errorf("stderr does not name the unfinished inputs:\n%s", stderr)
		return 0, n - results
	}
	seen := make([]int, n) // by index: results printed, then the named
	for i := range results {
		seen[i]++
	}
	mark := func(i int) {
		if i >= 0 && i < n {
			seen[i]++
			named++
		}
	}
	if m[2] != "none" {
		for _, r := range strings.Split(m[2], ", ") {
			lo, hi, ok := strings.Cut(r, "-")
			a, _ := strconv.Atoi(lo)
			b := a
			if ok {
				b, _ = strconv.Atoi(hi)
			}
			for i := a; i <= b; i++ {
				mark(i)
			}
		}
	}
	if m[3] != "" {
		from, _ := strconv.Atoi(m[3])
		for i := from; i < n; i++ {
			mark(i)
		}
	}
	for i, c := range seen {
		switch {
		case c == 0:
			lost++
		case c > 1:
			t.Errorf("input #%d both has a result and is named unfinished", i)
		}
	}
	return named, lost
}

// The store's filesystem fills up mid-map: the map fails within a bounded
// time, exit 1, naming the cause and the store; once the filesystem is
// grown, a new run works (the embedded broker starts afresh with it; a
// standalone broker must be restarted). Needs root to mount a tmpfs.
func TestFaultStoreFull(t *testing.T) {
	t.Parallel()
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a 2 MiB tmpfs for the store (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", mnt).Run() })
	const n = 20000
	e := newEnv(t, "nats://127.0.0.1:0").set("PROCQ_BROKER_STORE_DIR", filepath.Join(mnt, "js"))
	start := time.Now()
	p := e.squares(2, n, "--sleep", "0s", "--chunk-size", "1", "--quiet")
	p.mustExit(1, 3*exitWait)
	took := time.Since(start)
	for _, want := range []string{"the broker cannot store results", "store dir " + filepath.Join(mnt, "js") + ": 0.0 MiB free of 2.0 MiB"} {
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("stderr does not say %q:\n%s", want, p.stderr)
		}
	}
	unf := regexp.MustCompile(`map stopped with (\d+) inputs unfinished`).FindStringSubmatch(p.stderr.String())
	if out, err := exec.Command("mount", "-o", "remount,size=64m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("grow the tmpfs: %v %s", err, out)
	}
	p2 := e.start("producer", "pool", "--processes", "2", "--kind", "square", "--inputs", "1..200", "--sleep", "0s")
	p2.mustExit(0, exitWait)
	results, exact := squareResults(p2.stdout.String(), 200)
	report(t, row{scenario: "store filesystem full mid-map (2 MiB tmpfs), then grown", submitted: n,
		results: results, exact: exact && unf != nil, recover: took,
		note: "time to the loud failure (exit 1, cause and store named); the next run: 200 exact results"})
	if !exact {
		t.Errorf("the run after the store was grown is not exact:\n%s", p2.stdout)
	}
}
