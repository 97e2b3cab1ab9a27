package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/procq/procq/ops"
)

// Control over each task with the real executables: time limits and
// cancelling one task. Subtests of TestScheduleStandalone, on its broker.

// taskTimeLimit: a handler that ignores its context is stopped at the
// hard limit: its input fails "time limit exceeded after 1s", its task is
// dead-lettered with that reason, its consumer exits 4 and the producer
// starts a fresh one, and every other input has its exact result, once.
func taskTimeLimit(t *testing.T, e *env) {
	e.set("PROCQ_CONSUMERS_PATH", filepath.Join(binDir, "testconsumer"), "PROCQ_CONSUMERS_HARD_TIMEOUT_GRACE", "500ms")
	bad := e.schedRun(2, "producer", "pool", "--kind", "stubborn", "--inputs", "1", "--task-timeout=-1s")
	if !strings.Contains(bad.stderr.String(), "consumers.task_timeout") {
		t.Errorf("--task-timeout=-1s: stderr does not name consumers.task_timeout:\n%s", bad.stderr)
	}
	p := e.start("producer", "pool", "--kind", "stubborn", "--inputs", "1,2,-3,4,5,6,7,8", "--chunk-size", "1",
		"--processes", "2", "--task-timeout", "1s")
	p.mustExit(1, 2*time.Minute)
	out := p.stdout.String()
	var want []string
	for _, x := range []int{1, 2, -3, 4, 5, 6, 7, 8} {
		if x < 0 {
			want = append(want, fmt.Sprintf("stubborn(%d) failed: time limit exceeded after 1s", x))
			continue
		}
		want = append(want, fmt.Sprintf("stubborn(%d) = %d", x, x*x))
	}
	wantLines(t, resultLines(out), want)
	if !regexp.MustCompile(`(?m)^Producer: consumer C-\d \(pid \d+\) exited to stop a task past its time limit; starting a replacement$`).MatchString(out) {
		t.Errorf("the producer did not say it replaced the consumer:\n%s", out)
	}
	dead := e.schedRun(0, "broker", "dead", "list", "--queue", "limited", "--json")
	var letters []struct {
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(dead.stdout.String()), &letters); err != nil || len(letters) != 1 || letters[0].Reason != "time limit exceeded after 1s" {
		t.Errorf("dead letters (%v): want one, \"time limit exceeded after 1s\":\n%s", err, dead.stdout)
	}
	if q := controlStatus(t, e, "limited"); q.TimedOut != 1 {
		t.Errorf("status timed_out = %d, want 1", q.TimedOut)
	}
}

// taskCancel: broker task cancel stops a running input (its handler's
// context is cancelled), keeps a queued one from ever running, and removes
// a delayed item; each cancelled input fails "task cancelled" and the
// others have their exact results. A finished task, an unknown id and a
// map that ended are each said so, exit 2.
func taskCancel(t *testing.T, e *env) {
	// Inputs of 8s each, one at a time: #0 runs while the test cancels it.
	p := e.start("producer", "pool", "--kind", "square", "--inputs", "1..4", "--sleep", "8s", "--chunk-size", "1",
		"--processes", "1")
	var mapID string
	schedWait(t, 30*time.Second, "the map runs its first input", func() bool {
		st := controlStatusAll(t, e)
		for _, m := range st.Maps {
			if m.Queue == "cancels" {
				mapID = m.ID
			}
		}
		for _, c := range st.Consumers {
			if c.Queue == "cancels" && c.Task != "" && mapID != "" {
				return true
			}
		}
		return false
	})
	running, queued := mapID+".0", mapID+".2"
	if c := e.schedRun(0, "broker", "task", "cancel", running); c.stdout.String() != "task "+running+" cancelled\n" {
		t.Errorf("cancel of the running input: stdout %q", c.stdout)
	}
	if c := e.schedRun(0, "broker", "task", "cancel", queued); c.stdout.String() != "task "+queued+" cancelled\n" {
		t.Errorf("cancel of a queued input: stdout %q", c.stdout)
	}
	p.waitOutput(regexp.MustCompile(`(?m)^square\(2\) = 4$`), time.Minute)
	if c := e.schedRun(2, "broker", "task", "cancel", mapID+".1"); !strings.Contains(c.stderr.String(), "task "+mapID+".1: already finished") {
		t.Errorf("cancel of a finished input: stderr %q", c.stderr)
	}
	p.mustExit(1, time.Minute)
	wantLines(t, resultLines(p.stdout.String()), []string{
		"square(1) failed: task cancelled", "square(2) = 4", "square(3) failed: task cancelled", "square(4) = 16"})
	logs, _ := filepath.Glob(filepath.Join(e.dir, "logs", "consumer-*.log"))
	var log string
	for _, f := range logs {
		b, _ := os.ReadFile(f)
		log += string(b)
	}
	if !strings.Contains(log, `msg="running task cancelled"`) || !strings.Contains(log, "task_id="+running) {
		t.Errorf("the consumer's log does not say the running input was cancelled")
	}
	if !strings.Contains(log, `msg="cancelled task not run"`) || !strings.Contains(log, "task_id="+queued) {
		t.Errorf("the consumer's log does not say the queued input was not run")
	}
	if c := e.schedRun(2, "broker", "task", "cancel", mapID+".2"); !strings.Contains(c.stderr.String(), "no such task") {
		t.Errorf("cancel in a map that ended: stderr %q", c.stderr)
	}
	if c := e.schedRun(2, "broker", "task", "cancel", "nosuchmap.1"); !strings.Contains(c.stderr.String(), "task nosuchmap.1: no such task") {
		t.Errorf("cancel of an unknown task: stderr %q", c.stderr)
	}
	// A delayed item never joins its queue.
	put := e.startIn(strings.NewReader("\"later\"\n"), "producer", "put", "cancelitems", "--in", "1h")
	put.mustExit(0, exitWait)
	id := strings.TrimSpace(put.stdout.String())
	if c := e.schedRun(0, "broker", "task", "cancel", id); c.stdout.String() != "task "+id+" cancelled\n" {
		t.Errorf("cancel of a delayed item: stdout %q", c.stdout)
	}
	if c := e.schedRun(2, "broker", "task", "cancel", id); !strings.Contains(c.stderr.String(), "no such task") {
		t.Errorf("second cancel of a delayed item: stderr %q", c.stderr)
	}
	if l := e.schedListJSON(); len(l.Delayed) != 0 && l.Delayed[0].ID == id {
		t.Errorf("the cancelled item is still listed: %+v", l.Delayed)
	}
	if q := controlStatus(t, e, "cancels"); q.Cancelled != 2 {
		t.Errorf("status cancelled = %d, want 2", q.Cancelled)
	}
}

// controlStatusAll is "broker status --json".
func controlStatusAll(t *testing.T, e *env) ops.Status {
	t.Helper()
	st := e.schedRun(0, "broker", "status", "--json")
	var s ops.Status
	if err := json.Unmarshal([]byte(st.stdout.String()), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// controlStatus is the named queue's status.
func controlStatus(t *testing.T, e *env, queue string) ops.QueueStatus {
	t.Helper()
	q := statusQueue(controlStatusAll(t, e), queue)
	if q == nil {
		t.Fatalf("no queue %s in broker status", queue)
	}
	return *q
}
