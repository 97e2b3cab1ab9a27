package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/procq/procq/ops"
)

// consumers.max_tasks 3 over 10 tasks with one process: the producer
// starts four processes in turn, each runs its share (3, 3, 3, then 1
// and the sentinel), and every result arrives once, in order.
func TestMaxTasksRetiresConsumers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "nats://127.0.0.1:0").set("PROCQ_CONSUMERS_MAX_TASKS", "3")
	p := e.start("producer", "pool", "--processes", "1", "--kind", "square", "--sleep", "0s",
		"--inputs", "1..10", "--chunk-size", "1")
	p.mustExit(0, exitWait)
	wantSquares(t, p.stdout.String(), 10)

	plog := readLog(t, e, "producer")
	pids := regexp.MustCompile(`msg="consumer process started" .*child_pid=(\d+)`).FindAllStringSubmatch(plog, -1)
	seen := map[string]bool{}
	for _, m := range pids {
		seen[m[1]] = true
	}
	if len(pids) != 4 || len(seen) != 4 {
		t.Errorf("consumer processes started: %q, want 4 distinct", pids)
	}
	if n := strings.Count(plog, "retired after consumers.max_tasks; starting a fresh one"); n != 3 {
		t.Errorf("%d retirements in the producer's log, want 3", n)
	}
	var tasks []string
	for _, m := range regexp.MustCompile(`msg="consumer stopped" .*retired=(\w+) tasks=(\d+)`).FindAllStringSubmatch(readLog(t, e, "consumer-C-1"), -1) {
		tasks = append(tasks, m[1]+":"+m[2])
	}
	if want := []string{"true:3", "true:3", "true:3", "false:1"}; !slices.Equal(tasks, want) {
		t.Errorf("consumer processes stopped with %v, want %v (10 tasks, none twice)", tasks, want)
	}
}

// A consumer built on the library with a kind of its own (examples/
// wordcount): typed results through real processes; its initializer's
// failure exits 1 with the error, before any task.
func TestLibraryConsumer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, anyPort)
	e.startBroker()
	e.set("PROCQ_CONSUMERS_PATH", filepath.Join(binDir, "wordcount"))
	p := e.start("producer", "pool", "--processes", "2", "--kind", "words",
		"--inputs", `"the cat sat on the mat","a dog","The End"`)
	p.mustExit(0, exitWait)
	wantLines(t, resultLines(p.stdout.String()), []string{
		"words(the cat sat on the mat) = 3", "words(a dog) = 1", "words(The End) = 1"})

	e.set("STOPWORDS", filepath.Join(e.dir, "missing.txt"))
	c := e.start("wordcount", "--name", "W-1")
	c.mustExit(1, exitWait)
	if !strings.Contains(c.stderr.String(), "initializer: load stop words: open "+filepath.Join(e.dir, "missing.txt")) {
		t.Errorf("stderr does not carry the initializer's error:\n%s", c.stderr)
	}
}

func readLog(t *testing.T, e *env, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, "logs", name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The message queue between two processes: "producer put" then
// "consumer get" in FIFO order; a get on the empty queue times out with
// "queue empty"; --maxsize makes put wait for room, or fail once
// queue.put_timeout passes.
func TestMessageQueueCLI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, anyPort)
	e.startBroker()
	var in strings.Builder
	var want []string
	for i := range 20 {
		v := fmt.Sprintf(`{"id":%d,"tags":["a","b"]}`, i)
		if i%5 == 0 {
			v = fmt.Sprintf(`"text %d"`, i)
		}
		want = append(want, v)
		in.WriteString(v + "\n\n")
	}
	put := e.startIn(strings.NewReader(in.String()), "producer", "put", "jobs")
	put.mustExit(0, exitWait)
	if !strings.Contains(put.stderr.String(), "put 20 items on queue jobs") {
		t.Errorf("put said:\n%s", put.stderr)
	}
	first := e.start("consumer", "get", "jobs", "-n", "5")
	first.mustExit(0, exitWait)
	rest := e.start("consumer", "get", "jobs", "-n", "0", "--timeout", "1s")
	rest.mustExit(0, exitWait)
	got := strings.Split(strings.TrimSpace(first.stdout.String()+rest.stdout.String()), "\n")
	wantLines(t, got, want)

	empty := e.start("consumer", "get", "jobs", "--timeout", "300ms")
	empty.mustExit(1, exitWait)
	if !strings.Contains(empty.stderr.String(), "queue jobs: queue empty (0 of 1 items within 300ms each)") {
		t.Errorf("get on an empty queue said:\n%s", empty.stderr)
	}

	e.set("PROCQ_QUEUE_PUT_TIMEOUT", "500ms")
	full := e.startIn(strings.NewReader("1\n2\n3\n"), "producer", "put", "bounded", "--maxsize", "2")
	full.mustExit(1, exitWait)
	if !strings.Contains(full.stderr.String(), "stdin line 3: queue bounded: queue full") {
		t.Errorf("put past maxsize said:\n%s", full.stderr)
	}
	// broker status sees both message queues: jobs emptied, bounded full.
	status := e.start("broker", "status", "--json")
	status.mustExit(0, exitWait)
	var st ops.Status
	if err := json.Unmarshal([]byte(status.stdout.String()), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, status.stdout)
	}
	wantQueues := []ops.MsgQueueStatus{{Name: "bounded", Items: 2, MaxSize: 2}, {Name: "jobs", Items: 0, MaxSize: 0}}
	if !slices.Equal(st.MsgQueues, wantQueues) {
		t.Errorf("status shows message queues %+v, want %+v", st.MsgQueues, wantQueues)
	}
	text := e.start("broker", "status")
	text.mustExit(0, exitWait)
	if !regexp.MustCompile(`(?m)^bounded\s+2\s+2\s+0$`).MatchString(text.stdout.String()) { // 0 scheduled
		t.Errorf("status does not show the message queue bounded with 2 of 2 items:\n%s", text.stdout)
	}

	// With time to wait, put goes on as a getter makes room.
	e.set("PROCQ_QUEUE_PUT_TIMEOUT", "30s")
	waiting := e.startIn(strings.NewReader("3\n4\n"), "producer", "put", "bounded")
	getter := e.start("consumer", "get", "bounded", "-n", "4", "--timeout", "20s")
	waiting.mustExit(0, exitWait)
	getter.mustExit(0, exitWait)
	wantLines(t, strings.Fields(getter.stdout.String()), []string{"1", "2", "3", "4"})
}
