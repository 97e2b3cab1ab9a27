package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/procq/procq"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/ops"
	"github.com/procq/procq/protocol"
)

// poolPriority: producer pool --priority high overtakes a queue of
// low-priority tasks a consumer is working through: its tasks run while
// low ones put before them still wait, broker status shows the levels'
// counts, and in the end every task ran exactly once. An unknown
// --priority exits 2 naming it. A subtest of TestScheduleStandalone, on
// its broker, with a queue and consumers of its own.
func poolPriority(t *testing.T, e *env) {
	const lows = 800
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	bad := e.schedRun(2, "producer", "pool", "--kind", "square", "--inputs", "1..3", "--priority", "urgent")
	if !strings.Contains(bad.stderr.String(), `--priority "urgent": unknown priority: want high, default or low`) {
		t.Errorf("bad --priority: stderr %q", bad.stderr)
	}

	client := e.schedClient(ctx, t)
	pool, err := client.Pool(ctx) // declares the queue
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close(ctx)
	// One consumer at a time, 20ms a task: the low ones take 16 s.
	c1 := e.schedSub(t, "PROCQ_CONSUMERS_WORK_MIN", "20ms", "PROCQ_CONSUMERS_WORK_MAX", "20ms").start("consumer", "--name", "PR-1")
	for i := range lows {
		if _, err := pool.Submit(ctx, demo.KindMessage, demo.MessageArgs{Text: fmt.Sprint("low-", i)}, procq.Priority(procq.Low)); err != nil {
			t.Fatal(err)
		}
	}
	schedWait(t, 30*time.Second, "the consumer working through the low-priority tasks", func() bool { return len(pausedGot(c1)) >= 3 })

	var highs []string
	for i := range 5 {
		highs = append(highs, fmt.Sprintf(`{"text":"high-%d"}`, i))
	}
	// The map's run is served by the one consumer started by hand, which
	// takes the run's sentinel at its end.
	hp := e.schedSub(t, "PROCQ_CONSUMERS_COUNT", "1", "PROCQ_CONSUMERS_SPAWN", "false").start("producer", "pool", "--priority", "high", "--kind", "message",
		"--inputs", "["+strings.Join(highs, ",")+"]", "--chunk-size", "1")
	hp.mustExit(0, exitWait)
	out := hp.stdout.String()
	if !strings.HasPrefix(out, "Pool: mapping message over 5 inputs with 1 consumer processes, chunk size 1, priority high\n") ||
		!strings.Contains(out, "Pool: 5 results in input order, 0 failed") {
		t.Errorf("producer pool --priority high printed:\n%s", out)
	}
	if n := len(regexp.MustCompile(`(?m)^message\(map\[text:high-\d\]\) = null$`).FindAllString(out, -1)); n != 5 {
		t.Errorf("%d results of the high-priority map, want 5:\n%s", n, out)
	}
	c1.mustExit(0, exitWait) // its run's sentinel, once the map was done

	// The high-priority map is done; low-priority tasks put before it
	// still wait.
	st := e.schedRun(0, "broker", "status", "--json")
	var s ops.Status
	if err := json.Unmarshal([]byte(st.stdout.String()), &s); err != nil {
		t.Fatal(err)
	}
	q := statusQueue(s, "prio")
	if q == nil || len(q.Priorities) != 3 || q.Priorities[2].Priority != protocol.PriorityLow || q.Priorities[2].Pending == 0 ||
		q.Priorities[0].Pending+uint64(q.Priorities[0].InFlight) != 0 {
		t.Fatalf("status after the high-priority map: %+v, want low-priority tasks pending and no high one", q)
	}
	// The text shows the same low-priority tasks: pending and in flight
	// may trade one (a task delivered to PR-1's last pull as it exited is
	// in flight until its ack wait passes), their sum may not change.
	text := e.schedRun(0, "broker", "status").stdout.String()
	low := regexp.MustCompile(`(?m)^prio\s+low\s+(\d+)\s+(\d+)$`).FindStringSubmatch(text)
	if low == nil {
		t.Errorf("broker status shows no low-priority row for prio:\n%s", text)
	} else if pending, _ := strconv.Atoi(low[1]); pending == 0 || pending+mustAtoi(low[2]) != int(q.Priorities[2].Pending)+q.Priorities[2].InFlight {
		t.Errorf("broker status shows low-priority tasks %s pending, %s in flight; --json showed %d and %d:\n%s",
			low[1], low[2], q.Priorities[2].Pending, q.Priorities[2].InFlight, text)
	}
	ran1 := pausedGot(c1)
	t.Logf("the high-priority map ran after %d low-priority tasks; %d were waiting when it ended", countPrefix(ran1, "low-"), q.Priorities[2].Pending)

	// Another consumer, without work time, runs the rest.
	c2 := e.schedSub(t, "PROCQ_CONSUMERS_WORK_MIN", "0s", "PROCQ_CONSUMERS_WORK_MAX", "0s").start("consumer", "--name", "PR-2")
	schedWait(t, 60*time.Second, "every low-priority task run", func() bool { return len(ran1)+len(pausedGot(c2)) >= lows+5 })
	time.Sleep(500 * time.Millisecond) // a task run twice would show by now
	c2.stop()
	seen := map[string]int{}
	for _, s := range append(ran1, pausedGot(c2)...) {
		seen[s]++
	}
	for i := range lows {
		if n := seen[fmt.Sprint("low-", i)]; n != 1 {
			t.Errorf("low-%d ran %d times, want once", i, n)
		}
	}
	for i := range 5 {
		if n := countPrefix(ran1, fmt.Sprint("high-", i)); n != 1 {
			t.Errorf("PR-1 ran high-%d %d times, want once", i, n)
		}
	}
	if len(seen) != lows+5 {
		t.Errorf("%d distinct tasks ran, want %d", len(seen), lows+5)
	}
}

func mustAtoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// countPrefix counts the texts that begin with prefix.
func countPrefix(texts []string, prefix string) int {
	n := 0
	for _, s := range texts {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}
