package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/procq/procq/protocol"
)

// refuseResults makes the world's results stream refuse every write for
// d (one message in it, at most one allowed, new ones refused, as
// `nats stream edit PROCQ_RESULTS --max-msgs=1 --discard=new` does),
// then restores its limits. It returns when the refusal began and ended.
func refuseResults(t *testing.T, js jetstream.JetStream, d time.Duration) (from, to time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, protocol.ResultSubject("blocker"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, protocol.ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.Config
	refusing := cfg
	refusing.MaxMsgs, refusing.Discard = 1, jetstream.DiscardNew
	if _, err := js.UpdateStream(ctx, refusing); err != nil {
		t.Fatal(err)
	}
	from = time.Now()
	time.Sleep(d)
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("restore the results stream: %v", err)
	}
	return from, time.Now()
}

var keptRE = regexp.MustCompile(`msg="answers not stored; keeping them`)

// The results stream refuses writes for 6 s mid-map: the consumers keep
// the computed answers and their tasks' leases and store them again with
// backoff (queue.put_timeout, 30 s, bounds it), so no task uses a try,
// none is dead-lettered, and the map completes exactly.
func TestFaultResultsRefused(t *testing.T) {
	t.Parallel()
	const n = 3000
	e, b := faultEnv(t, "PROCQ_LOG_LEVEL", "info")
	p := e.squares(2, n, "--sleep", "1ms", "--chunk-size", "1")
	p.waitOutput(regexp.MustCompile(`(?m)^square\(300\) = `), 60*time.Second)
	js := e.js(t)
	_, restored := refuseResults(t, js, 6*time.Second)
	p.mustExit(0, exitWait)
	results, exact := squareResults(p.stdout.String(), n)
	kept := e.logCount("consumer-C-1.log", keptRE) + e.logCount("consumer-C-2.log", keptRE)
	dead := streamMsgs(t, js, protocol.DeadStream)
	report(t, row{scenario: "results stream refusing writes for 6 s mid-map", submitted: n, results: results,
		exact: exact, dupes: e.logCount("producer.log", dupRE), dead: dead, lost: n - results,
		recover: stall(p.stdout, []time.Time{restored}),
		note:    "answers kept and stored again with backoff; longest wait for the next result after the stream took writes again"})
	if !exact {
		t.Errorf("results not exact")
	}
	if dead != 0 {
		t.Errorf("%d tasks dead-lettered, want none", dead)
	}
	if kept == 0 {
		t.Errorf("no consumer logged an answer refused (nothing tested)")
	}
	b.stop()
}

var refusedFailRE = regexp.MustCompile(`(?m)^square\((\d+)\) failed: (.*)$`)

// The results stream refuses writes for 6 s, longer than the consumers'
// store timeout (queue.put_timeout, 2 s here): the tasks whose answers
// were not stored within it are dead-lettered, their inputs fail in the
// map at once with the reason, the rest have their results, and the map
// ends: exit 1, every input accounted for.
func TestFaultResultsRefusedPastPutTimeout(t *testing.T) {
	t.Parallel()
	const n = 3000
	e, b := faultEnv(t, "PROCQ_LOG_LEVEL", "info", "PROCQ_QUEUE_PUT_TIMEOUT", "2s")
	p := e.squares(2, n, "--sleep", "1ms", "--chunk-size", "1")
	p.waitOutput(regexp.MustCompile(`(?m)^square\(300\) = `), 60*time.Second)
	js := e.js(t)
	from, _ := refuseResults(t, js, 6*time.Second)
	p.mustExit(1, exitWait)
	took := time.Since(from)
	out := p.stdout.String()
	results, _ := squareResults(out, n)
	fails := refusedFailRE.FindAllStringSubmatch(out, -1)
	exact := results+len(fails) == n
	seen := map[int]bool{}
	for _, m := range squareRE.FindAllStringSubmatch(out, -1) {
		x, _ := strconv.Atoi(m[1])
		y, _ := strconv.Atoi(m[2])
		exact = exact && !seen[x] && y == x*x
		seen[x] = true
	}
	for _, m := range refusedFailRE.FindAllStringSubmatch(out, -1) {
		x, _ := strconv.Atoi(m[1])
		exact = exact && !seen[x]
		seen[x] = true
		if !strings.HasPrefix(m[2], "dead-lettered: answer not stored within 2s (queue.put_timeout): ") {
			t.Errorf("input %d failed with %q, want the answer not stored named", x, m[2])
		}
	}
	dead := streamMsgs(t, js, protocol.DeadStream)
	report(t, row{scenario: "results stream refusing writes for 6 s, past queue.put_timeout 2 s", submitted: n,
		results: results, exact: exact, dupes: e.logCount("producer.log", dupRE), dead: dead,
		lost: n - results - len(fails), recover: took,
		note: fmt.Sprintf("%d inputs failed 'answer not stored within 2s', one dead letter each, the rest exact; time from the refusal to exit 1", len(fails))})
	if !exact {
		t.Errorf("results and failures do not cover every input once")
	}
	if len(fails) == 0 {
		t.Errorf("no input failed (nothing tested)")
	}
	if dead != len(fails) {
		t.Errorf("%d dead letters, want %d (one per failed input)", dead, len(fails))
	}
	if want := fmt.Sprintf("%d of %d inputs failed", len(fails), n); !strings.Contains(p.stderr.String(), want) {
		t.Errorf("stderr does not say %q:\n%s", want, p.stderr)
	}
	b.stop()
}
