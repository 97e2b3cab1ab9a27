package e2e

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/procq/procq/internal/natstest"
)

// binDir holds the executables built by TestMain.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	parallelByDefault()
	dir, err := os.MkdirTemp("", "procq-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	var race []string
	if raceEnabled {
		race = []string{"-race"} // the processes under test get the race detector too
		// A race-built process sleeps atexit_sleep_ms (1 s by default)
		// before it exits, so that a race report another thread is
		// printing completes: the hundreds of processes these tests start
		// and wait for would each add that second. 100 ms is still ample
		// for a report (printed by the thread that found the race, which
		// then sets the exit code 66 the tests see). A GORACE of the
		// caller's own is kept.
		if _, set := os.LookupEnv("GORACE"); !set {
			os.Setenv("GORACE", "atexit_sleep_ms=100")
		}
	}
	for _, b := range []struct {
		out  string
		pkgs []string
	}{
		{dir + "/", []string{"../cmd/broker", "../cmd/producer", "../cmd/consumer", "../examples/wordcount"}},
		// The test consumer: built-ins, "add", "firsttry".
		{filepath.Join(dir, "testconsumer"), []string{"../testdata/consumer"}},
	} {
		args := append(append([]string{"build", "-o", b.out}, race...), b.pkgs...)
		build := exec.Command("go", args...)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build executables:", err)
			return 1
		}
	}
	binDir = dir
	return m.Run()
}

// parallelByDefault runs up to four tests per CPU at once unless
// -test.parallel is given. These tests spend most of their time waiting:
// for the processes they start, for timers (delays, TTLs, schedules) and
// for brokers to elect and recover, and go test's default of one test per
// CPU leaves the CPUs mostly idle.
func parallelByDefault() {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", strconv.Itoa(4*runtime.GOMAXPROCS(0)))
	}
}

// env is one test's world: a working directory (no config.yaml unless the
// test writes one) and PROCQ_* variables that point every process at the
// same broker, store and log dir.
type env struct {
	t    *testing.T
	dir  string
	vars map[string]string
}

// newEnv makes a test world whose broker listens on url (port 0: the
// producer's embedded broker picks one).
func newEnv(t *testing.T, url string) *env {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			t.Logf("--- %s ends:\n%s", filepath.Base(l), strings.Join(lines[max(0, len(lines)-25):], "\n"))
		}
	})
	e := &env{t: t, dir: dir, vars: map[string]string{
		"PROCQ_BROKER_URL":             url,
		"PROCQ_BROKER_STORE_DIR":       filepath.Join(dir, "data"),
		"PROCQ_BROKER_CONNECT_TIMEOUT": "20s",
		"PROCQ_LOG_DIR":                filepath.Join(dir, "logs"),
		"PROCQ_QUEUE_PAUSE_MIN":        "0s",
		"PROCQ_QUEUE_PAUSE_MAX":        "10ms",
		"PROCQ_CONSUMERS_WORK_MIN":     "10ms",
		"PROCQ_CONSUMERS_WORK_MAX":     "40ms",
		"PROCQ_QUEUE_ACK_WAIT":         "2s",
	}}
	// E2E_SYNC_ALWAYS=true|false runs every broker of the suite with that
	// broker.sync_always (the test environment may set no PROCQ_ variable).
	if v, ok := os.LookupEnv("E2E_SYNC_ALWAYS"); ok {
		e.vars["PROCQ_BROKER_SYNC_ALWAYS"] = v
	}
	return e
}

// anyPort is the broker URL of a test world whose standalone broker picks
// a free port itself: startBroker reads the bound address from the
// broker's output, so parallel tests never race for a port.
const anyPort = "nats://127.0.0.1:0"

func (e *env) set(kv ...string) *env {
	for i := 0; i+1 < len(kv); i += 2 {
		e.vars[kv[i]] = kv[i+1]
	}
	return e
}

func (e *env) environ() []string {
	out := os.Environ()
	for _, kv := range out {
		if strings.HasPrefix(kv, "PROCQ_") {
			e.t.Fatalf("test environment already sets %s", kv)
		}
	}
	for k, v := range e.vars {
		out = append(out, k+"="+v)
	}
	return out
}

// proc is a running executable with its output captured.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdout *syncBuf
	stderr *syncBuf
	done   chan struct{}
	err    error
}

// start runs bin/<exe> with args in the test world.
func (e *env) start(exe string, args ...string) *proc {
	e.t.Helper()
	return e.startIn(nil, exe, args...)
}

// startIn is start with stdin read from in (nil: none).
func (e *env) startIn(in io.Reader, exe string, args ...string) *proc {
	e.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, exe), args...)
	cmd.Stdin = in
	return e.startCmd(cmd, exe+" "+strings.Join(args, " "))
}

// startCmd starts cmd, an executable of bin/, in the test world as the
// process named name: killed (continued first, should it be stopped) when
// the test ends, its output logged when the test failed.
func (e *env) startCmd(cmd *exec.Cmd, name string) *proc {
	e.t.Helper()
	cmd.Dir = e.dir
	cmd.Env = e.environ()
	p := &proc{t: e.t, name: name, cmd: cmd, stdout: &syncBuf{}, stderr: &syncBuf{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start %s: %v", p.name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	e.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Signal(syscall.SIGCONT)
			_ = cmd.Process.Kill()
			<-p.done
		}
		if e.t.Failed() {
			e.t.Logf("--- %s stdout:\n%s--- %s stderr:\n%s", p.name, p.stdout, p.name, p.stderr)
		}
	})
	return p
}

var listeningRE = regexp.MustCompile(`Broker: listening on ((?:nats|tls)://127\.0\.0\.1:\d+)`)

// startBroker starts a standalone broker and waits until it listens. Where
// the world's URL says port 0, the broker picks one and the world's URL
// becomes the bound address, for every process started after it (and a
// restarted broker, which binds the same port).
func (e *env) startBroker() *proc {
	e.t.Helper()
	b := e.start("broker")
	m := listeningRE.FindStringSubmatch(b.waitOutput(listeningRE, 20*time.Second))
	if strings.HasSuffix(e.vars["PROCQ_BROKER_URL"], ":0") {
		e.vars["PROCQ_BROKER_URL"] = m[1]
	}
	return b
}

// fixedURL is for the one kind of test that needs the broker's address
// before the broker exists (clients started first).
func fixedURL(t *testing.T) string { return "nats://" + natstest.FixedAddr(t) }

// url is the world's broker URL.
func (e *env) url() string { return e.vars["PROCQ_BROKER_URL"] }

// stop sends SIGTERM and checks the process exits 0.
func (p *proc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	p.mustExit(0, 60*time.Second)
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Signal(syscall.SIGQUIT) // dump goroutines into stderr
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		p.t.Fatalf("%s did not exit within %v", p.name, timeout)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatalf("%s: %v", p.name, p.err)
	}
	return 0
}

// mustExit waits and checks the exit code.
func (p *proc) mustExit(code int, timeout time.Duration) {
	p.t.Helper()
	if got := p.wait(timeout); got != code {
		p.t.Fatalf("%s exited %d, want %d\nstderr:\n%s", p.name, got, code, p.stderr)
	}
}

// running reports whether the process has not exited yet.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// waitOutput waits until the pattern matches stdout or stderr.
func (p *proc) waitOutput(re *regexp.Regexp, timeout time.Duration) string {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if m := re.FindString(p.stdout.String()); m != "" {
			return m
		}
		if m := re.FindString(p.stderr.String()); m != "" {
			return m
		}
		select {
		case <-p.done:
			p.t.Fatalf("%s exited before printing %q", p.name, re)
		case <-time.After(20 * time.Millisecond):
		}
	}
	p.t.Fatalf("%s did not print %q within %v", p.name, re, timeout)
	return ""
}

// syncBuf is a bytes.Buffer safe for the writer goroutine and the test; it
// also notes when each line arrived.
type syncBuf struct {
	mu    sync.Mutex
	b     bytes.Buffer
	times []time.Time // arrival of each complete line
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for range bytes.Count(p, []byte("\n")) {
		s.times = append(s.times, now)
	}
	return s.b.Write(p)
}

// firstAfter returns when the first line matching re that arrived after t
// arrived, or the zero time.
func (s *syncBuf) firstAfter(t time.Time, re *regexp.Regexp) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, line := range strings.Split(s.b.String(), "\n") {
		if i < len(s.times) && s.times[i].After(t) && re.MatchString(line) {
			return s.times[i]
		}
	}
	return time.Time{}
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var gotRE = regexp.MustCompile(`(?m)^Consumer (\S+): Got 'Message (\d+)' from queue$`)

// gots maps each message index to the consumers that printed it as got.
func gots(outputs ...string) map[int][]string {
	m := map[int][]string{}
	for _, out := range outputs {
		for _, g := range gotRE.FindAllStringSubmatch(out, -1) {
			i, _ := strconv.Atoi(g[2])
			m[i] = append(m[i], g[1])
		}
	}
	return m
}

// checkExactlyOnce checks that messages 0..n-1 were each got exactly once.
func checkExactlyOnce(t *testing.T, n int, outputs ...string) {
	t.Helper()
	g := gots(outputs...)
	if len(g) != n {
		t.Errorf("got %d distinct messages, want %d: %v", len(g), n, g)
	}
	for i := range n {
		if len(g[i]) != 1 {
			t.Errorf("Message %d got by %v, want exactly one consumer", i, g[i])
		}
	}
}

// wantQueueDemo checks the Queue demo's output with two spawned
// consumers: each of the 10 messages put once and got exactly once, and
// one sentinel taken by each consumer.
func wantQueueDemo(t *testing.T, out string) {
	t.Helper()
	for i := range 10 {
		want := "Producer: Putting 'Message " + strconv.Itoa(i) + "' on queue\n"
		if strings.Count(out, want) != 1 {
			t.Errorf("stdout has %q %d times, want once", want, strings.Count(out, want))
		}
	}
	checkExactlyOnce(t, 10, out)
	if sc := sentinelCount(out); sc["C-1"] != 1 || sc["C-2"] != 1 || len(sc) != 2 {
		t.Errorf("sentinels taken %v, want C-1 and C-2 once each", sc)
	}
}

// wantPipeDemo checks the Pipe demo's exact lines on both ends.
func wantPipeDemo(t *testing.T, out string) {
	t.Helper()
	wantLines(t, linesWith(out, "Receiver:"), []string{
		"Receiver: Waiting for messages...",
		"Receiver: Received 'Hello from sender!'",
		"Receiver: Received 'Another message.'",
		"Receiver: Connection closed by sender.",
	})
	wantLines(t, linesWith(out, "Sender:"), []string{
		"Sender: Sending 'Hello from sender!'",
		"Sender: Sending 'Another message.'",
		"Sender: Closing the connection.",
	})
}

// sentinelCount counts "Received sentinel" lines per consumer.
func sentinelCount(outputs ...string) map[string]int {
	re := regexp.MustCompile(`(?m)^Consumer (\S+): Received sentinel, exiting\.$`)
	m := map[string]int{}
	for _, out := range outputs {
		for _, g := range re.FindAllStringSubmatch(out, -1) {
			m[g[1]]++
		}
	}
	return m
}

func keys(m map[string]int) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}
