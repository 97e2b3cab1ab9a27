package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procq/procq/demo"
	"github.com/shirou/gopsutil/v3/cpu"
)

// The seed's Pool example: the default inputs give the exact sums, in
// input order.
func TestPoolSeedInputs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "nats://127.0.0.1:0")
	p := e.start("producer", "pool", "--processes", "2")
	p.mustExit(0, exitWait)
	lines := resultLines(p.stdout.String())
	want := []string{
		"sumsquares(50000000) = 41666665416666675000000",
		"sumsquares(50000001) = 41666667916666675000000",
		"sumsquares(50000002) = 41666670416666775000001",
		"sumsquares(50000003) = 41666672916666975000005",
		"sumsquares(49999999) = 41666662916666774999999",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("results:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if !regexp.MustCompile(`Pool: 5 results in input order, 0 failed, in \d+\.\d{3} s`).MatchString(p.stdout.String()) {
		t.Errorf("no summary line in:\n%s", p.stdout)
	}
	if sc := sentinelCount(p.stdout.String()); sc["C-1"] != 1 || sc["C-2"] != 1 || len(sc) != 2 {
		t.Errorf("sentinels %v, want one each for C-1 and C-2", sc)
	}
}

var resultRE = regexp.MustCompile(`(?m)^\w+\(.*\) (=|failed:) .*$`)

func resultLines(out string) []string { return resultRE.FindAllString(out, -1) }

// wantSquares checks the output has exactly the results square(1..n), once
// each, in input order.
func wantSquares(t *testing.T, out string, n int) {
	t.Helper()
	var want []string
	for i := 1; i <= n; i++ {
		want = append(want, fmt.Sprintf("square(%d) = %d", i, i*i))
	}
	wantLines(t, resultLines(out), want)
}

// --json prints one JSON array in input order and nothing else on stdout;
// a failing input has its error and a null result, the others succeed, and
// the exit code says that one failed.
func TestPoolJSONWithOneFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "nats://127.0.0.1:0")
	p := e.start("producer", "pool", "--processes", "2", "--kind", "square", "--sleep", "0s",
		"--inputs", "1,2,5000000000,4", "--json")
	p.mustExit(1, exitWait)
	var got []struct {
		Index  int              `json:"index"`
		Input  json.Number      `json:"input"`
		Result *json.RawMessage `json:"result"`
		Error  *string          `json:"error"`
	}
	dec := json.NewDecoder(strings.NewReader(p.stdout.String()))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("stdout is not one JSON array: %v\n%s", err, p.stdout)
	}
	if dec.More() {
		t.Errorf("stdout has more than the JSON array:\n%s", p.stdout)
	}
	wantIn := []string{"1", "2", "5000000000", "4"}
	wantRes := []string{"1", "4", "", "16"}
	if len(got) != 4 {
		t.Fatalf("%d elements, want 4", len(got))
	}
	for i, g := range got {
		if g.Index != i || string(g.Input) != wantIn[i] {
			t.Errorf("element %d: index %d input %s", i, g.Index, g.Input)
		}
		if i == 2 {
			if g.Result != nil && string(*g.Result) != "null" || g.Error == nil || !strings.Contains(*g.Error, "overflows") {
				t.Errorf("element 2: result %v error %v, want null and an overflow error", g.Result, g.Error)
			}
			continue
		}
		if g.Error != nil || g.Result == nil || string(*g.Result) != wantRes[i] {
			t.Errorf("element %d: result %v error %v, want %s", i, g.Result, g.Error, wantRes[i])
		}
	}
	if !strings.Contains(p.stderr.String(), "1 of 4 inputs failed") {
		t.Errorf("stderr %q does not say 1 of 4 inputs failed", p.stderr)
	}
}

// square over 1..10 with 4 processes: 1, 4, ..., 100 in order; with a
// 100 ms sleep per task this is the seed's Pool(4) example.
func TestPoolSquareInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "nats://127.0.0.1:0")
	p := e.start("producer", "pool", "--processes", "4", "--kind", "square", "--inputs", "1..10", "--sleep", "100ms")
	p.mustExit(0, exitWait)
	wantSquares(t, p.stdout.String(), 10)
}

// Consumers running two tasks at once still give every result in order.
func TestPoolConcurrency(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "nats://127.0.0.1:0")
	p := e.start("producer", "pool", "--processes", "2", "--concurrency", "2", "--kind", "square",
		"--inputs", "1..8", "--sleep", "50ms")
	p.mustExit(0, exitWait)
	wantSquares(t, p.stdout.String(), 8)
}

// Pool size 0 means the logical CPU count, read with gopsutil.
func TestPoolSizeZeroIsCPUCount(t *testing.T) {
	t.Parallel()
	n, err := cpu.Counts(true)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "nats://127.0.0.1:0")
	p := e.start("producer", "pool", "--processes", "0", "--kind", "square", "--inputs", "1..3", "--sleep", "0s")
	p.mustExit(0, exitWait)
	want := fmt.Sprintf("with %d consumer processes", n)
	if !strings.Contains(p.stdout.String(), want) {
		t.Errorf("stdout does not say %q:\n%s", want, p.stdout)
	}
	if sc := sentinelCount(p.stdout.String()); len(sc) != n {
		t.Errorf("%d consumers took sentinels, want %d", len(sc), n)
	}
}

// kill -9 of a consumer mid-map: the map neither hangs nor fails; every
// index has exactly one result, in order, and the producer replaces the
// dead process.
func TestPoolSurvivesKilledConsumer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "nats://127.0.0.1:0").set("PROCQ_QUEUE_ACK_WAIT", "1s")
	p := e.start("producer", "pool", "--processes", "2", "--kind", "square", "--inputs", "1..12",
		"--sleep", "300ms", "--chunk-size", "1")
	pid := childPID(t, e, "C-2")
	p.waitOutput(regexp.MustCompile(`(?m)^square\(1\) = 1$`), 30*time.Second)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.mustExit(0, exitWait)
	wantSquares(t, p.stdout.String(), 12)
	if !strings.Contains(p.stdout.String(), fmt.Sprintf("consumer C-2 (pid %d) died", pid)) {
		t.Errorf("producer did not report the dead consumer:\n%s", p.stdout)
	}
	if sc := sentinelCount(p.stdout.String()); sc["C-1"] != 1 || sc["C-2"] != 1 {
		t.Errorf("sentinels %v: want C-1 and the replacement C-2 once each", sc)
	}
}

// childPID reads a spawned consumer's pid from the producer's log.
func childPID(t *testing.T, e *env, name string) int {
	t.Helper()
	re := regexp.MustCompile(`msg="consumer process started" .*consumer=` + name + ` child_pid=(\d+)`)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(filepath.Join(e.dir, "logs", "producer.log"))
		if m := re.FindSubmatch(b); m != nil {
			pid, _ := strconv.Atoi(string(m[1]))
			return pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no pid for %s in producer.log", name)
	return 0
}

// The Process demo: core counts and PIDs from gopsutil, both times and a
// speedup; the parallel tasks run in two other processes.
func TestCompare(t *testing.T) {
	t.Parallel()
	const n = 20_000_000
	e := newEnv(t, "nats://127.0.0.1:0")
	p := e.start("producer", "compare", "--n", strconv.Itoa(n))
	p.mustExit(0, exitWait)
	out := p.stdout.String()
	logical, _ := cpu.Counts(true)
	physical, _ := cpu.Counts(false)
	for _, want := range []string{
		fmt.Sprintf("Logical CPU cores: %d\n", logical),
		fmt.Sprintf("Physical CPU cores: %d\n", max(physical, 1)),
		fmt.Sprintf("Main process PID: %d\n", p.cmd.Process.Pid),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	sum, err := demo.SumSquares(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	prefix := sum.String()[:10]
	pids := map[string]string{}
	for _, label := range []string{"Sync-1", "Sync-2", "Parallel-1", "Parallel-2"} {
		m := regexp.MustCompile(`Process ` + label + ` \(PID: (\d+)\) starting\.\.\.`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no start line for %s:\n%s", label, out)
		}
		pids[label] = m[1]
		fin := "Process " + label + ": Finished. Result (truncated): " + prefix + "..."
		if !strings.Contains(out, fin) {
			t.Errorf("stdout lacks %q", fin)
		}
	}
	main := strconv.Itoa(p.cmd.Process.Pid)
	if pids["Sync-1"] != main || pids["Sync-2"] != main {
		t.Errorf("sync tasks ran in %v, want the main PID %s", pids, main)
	}
	if pids["Parallel-1"] == main || pids["Parallel-2"] == main || pids["Parallel-1"] == pids["Parallel-2"] {
		t.Errorf("parallel tasks ran in %s and %s, want two processes other than %s", pids["Parallel-1"], pids["Parallel-2"], main)
	}
	for _, re := range []string{
		`(?m)^Synchronous execution time: \d+\.\d{3} s$`,
		`(?m)^Multiprocessed execution time \(CPU-bound\): \d+\.\d{3} s$`,
		`(?m)^Speedup: \d+\.\d{2}x with 2 processes on \d+ logical cores$`,
		`(?m)^Consumer C-1 \(PID: \d+\): CPU \d+\.\d{2} s, RSS \d+\.\d MiB$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("stdout does not match %s:\n%s", re, out)
		}
	}
}

// SIGTERM stops a map: the producer stops its consumers, says which inputs
// are unfinished and exits 1, so a script never takes it for success.
func TestPoolInterrupted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "nats://127.0.0.1:0")
	p := e.start("producer", "pool", "--processes", "1", "--kind", "square", "--inputs", "1..20", "--sleep", "300ms")
	p.waitOutput(regexp.MustCompile(`(?m)^square\(1\) = 1$`), 30*time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.mustExit(1, exitWait)
	if !regexp.MustCompile(`map stopped with \d+ inputs unfinished \(\d+-19\): terminated signal received`).MatchString(p.stderr.String()) {
		t.Errorf("stderr does not name the unfinished inputs:\n%s", p.stderr)
	}
	if strings.Contains(p.stderr.String(), "consumer process failed") {
		t.Errorf("a consumer told to stop was reported as failed:\n%s", p.stderr)
	}
}

// Integers beyond 2^53 (where float64 loses digits) pass through unchanged:
// from the command line to the consumer and back, in --json and in text.
func TestPoolBigIntegersPassThrough(t *testing.T) {
	t.Parallel()
	const big = "9007199254740993" // 2^53 + 1
	e := newEnv(t, "nats://127.0.0.1:0")
	p := e.start("producer", "pool", "--processes", "1", "--kind", "square", "--inputs", big+",3", "--sleep", "0s", "--json")
	p.mustExit(1, exitWait) // the square overflows: one failed input
	for _, want := range []string{`"input":` + big + `,`, `x*x overflows int64 for x=` + big, `"input":3,"result":9,`} {
		if !strings.Contains(p.stdout.String(), want) {
			t.Errorf("--json output lacks %s:\n%s", want, p.stdout)
		}
	}
	p = e.start("producer", "pool", "--processes", "1", "--kind", "square", "--inputs", big, "--sleep", "0s")
	p.mustExit(1, exitWait)
	if want := "square(" + big + ") failed: bad task arguments: x*x overflows int64 for x=" + big; !strings.Contains(p.stdout.String(), want) {
		t.Errorf("text output lacks %q:\n%s", want, p.stdout)
	}
}
