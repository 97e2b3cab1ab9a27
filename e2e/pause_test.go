package e2e

import (
	"context"
	"encoding/json"

	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/procq/procq/demo"
	"github.com/procq/procq/ops"
)

// queuePause: broker queue pause stops a queue's consumer from taking
// anything while it stays connected and producers still put; resume runs
// everything once, in order; a pause --for ends by itself; an unknown
// queue and a negative --for exit 2. A subtest of TestScheduleStandalone,
// on its broker, with a queue and a consumer of its own.
func queuePause(t *testing.T, e *env) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := e.schedClient(ctx, t)
	pool, err := client.Pool(ctx) // declares the queue
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close(ctx)
	c := e.start("consumer", "--name", "P-1")
	e.waitLog("consumer-P-1.log", regexp.MustCompile(`msg="consumer started"`), 30*time.Second)

	if p := e.schedRun(2, "broker", "queue", "pause", "nosuchqueue"); !strings.Contains(p.stderr.String(), "queue nosuchqueue: no such queue") {
		t.Errorf("pause of an unknown queue: stderr %q", p.stderr)
	}
	if p := e.schedRun(2, "broker", "queue", "pause", "paused", "--for", "-1s"); !strings.Contains(p.stderr.String(), "--for must not be negative") {
		t.Errorf("pause --for -1s: stderr %q", p.stderr)
	}
	if p := e.schedRun(0, "broker", "queue", "pause", "paused"); p.stdout.String() != "queue paused paused until resumed\n" {
		t.Errorf("pause: stdout %q", p.stdout)
	}
	put := func(texts ...string) {
		for _, text := range texts {
			if _, err := pool.Submit(ctx, demo.KindMessage, demo.MessageArgs{Text: text}); err != nil {
				t.Fatal(err)
			}
		}
	}
	texts := []string{"p0", "p1", "p2", "p3", "p4"}
	put(texts...)
	time.Sleep(2 * time.Second) // the consumer would have taken them by now
	if got := pausedGot(c); len(got) != 0 {
		t.Fatalf("a paused queue's consumer ran %q", got)
	}
	st := e.schedRun(0, "broker", "status", "--json")
	var s ops.Status
	if err := json.Unmarshal([]byte(st.stdout.String()), &s); err != nil {
		t.Fatal(err)
	}
	q := statusQueue(s, "paused")
	if q == nil || q.PausedUntil == nil || q.Pending != 5 || q.Consumers != 1 {
		t.Fatalf("status of the paused queue: %+v, want paused, 5 pending, its consumer present", q)
	}
	if text := e.schedRun(0, "broker", "status"); !strings.Contains(text.stdout.String(), "queue paused paused until resumed\n") {
		t.Errorf("status does not say the queue is paused:\n%s", text.stdout)
	}

	e.schedRun(0, "broker", "queue", "resume", "paused")
	schedWait(t, 15*time.Second, "the five tasks run after resume", func() bool { return len(pausedGot(c)) >= 5 })
	if got := pausedGot(c); !slices.Equal(got, texts) {
		t.Errorf("after resume the consumer ran %q, want %q once each, in order", got, texts)
	}

	// A pause with an end ends by itself.
	paused := time.Now()
	p := e.schedRun(0, "broker", "queue", "pause", "paused", "--for", "2s")
	if !regexp.MustCompile(`^queue paused paused until \S+Z\n$`).MatchString(p.stdout.String()) {
		t.Errorf("pause --for 2s: stdout %q", p.stdout)
	}
	put("p5")
	schedWait(t, 15*time.Second, "the task put during a 2s pause runs", func() bool { return len(pausedGot(c)) == 6 })
	if took := time.Since(paused); took < 1500*time.Millisecond {
		t.Errorf("a task ran %v into a 2s pause", took)
	}
	time.Sleep(500 * time.Millisecond)
	if got := pausedGot(c); len(got) != 6 || got[5] != "p5" {
		t.Errorf("the consumer ran %q, want p0..p5 once each", got)
	}
}

// pausedGot are the texts the consumer got, in order.
func pausedGot(c *proc) []string {
	var got []string
	for _, l := range schedLines(c.stdout) {
		if m := schedGotRE.FindStringSubmatch(l.text); m != nil {
			got = append(got, m[1])
		}
	}
	return got
}

// statusQueue is the named queue in s, or nil.
func statusQueue(s ops.Status, name string) *ops.QueueStatus {
	for i := range s.Queues {
		if s.Queues[i].Name == name {
			return &s.Queues[i]
		}
	}
	return nil
}

// poolDeadline: producer pool --deadline in the past runs nothing: every
// input fails "deadline passed" and its task is dead-lettered, exit 1; a
// deadline ahead maps as usual; a bad one exits 2.
func poolDeadline(t *testing.T, e *env) {
	p := e.start("producer", "pool", "--kind", "square", "--inputs", "1..3", "--processes", "1", "--sleep", "0s",
		"--deadline", "2020-01-01T00:00:00Z")
	p.mustExit(1, exitWait)
	if !strings.Contains(p.stderr.String(), "--deadline 2020-01-01T00:00:00Z is in the past: every task will be dead-lettered, none run") {
		t.Errorf("stderr does not say the deadline is past:\n%s", p.stderr)
	}
	failed := regexp.MustCompile(`(?m)^square\((\d)\) failed: deadline passed: due by 2020-01-01T00:00:00Z, taken \S+ later$`).FindAllStringSubmatch(p.stdout.String(), -1)
	if len(failed) != 3 || failed[0][1] != "1" || failed[1][1] != "2" || failed[2][1] != "3" {
		t.Errorf("want inputs 1, 2, 3 failed with deadline passed, in order:\n%s", p.stdout)
	}
	ok := e.start("producer", "pool", "--kind", "square", "--inputs", "1..3", "--processes", "1", "--sleep", "0s",
		"--deadline", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	ok.mustExit(0, exitWait)
	wantSquares(t, ok.stdout.String(), 3)
	bad := e.schedRun(2, "producer", "pool", "--kind", "square", "--inputs", "1..3", "--deadline", "tomorrow")
	if !strings.Contains(bad.stderr.String(), `--deadline "tomorrow": want an RFC 3339 time`) {
		t.Errorf("bad --deadline: stderr %q", bad.stderr)
	}
}
