package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/procq/procq"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/ops"
	"github.com/procq/procq/protocol"
)

// opsWorld is one standalone broker serving its metrics, NATS monitoring
// and dashboard, with two test consumers of queue "ops" started by hand,
// each serving its metrics; the subtests share it.
type opsWorld struct {
	e                    *env
	token                string
	metrics, monitor, ui string // the broker's endpoints
	consumers            map[string]*proc
	consumerMetrics      map[string]string // by name: its /metrics URL
	client               *procq.Client
}

var endpointRE = regexp.MustCompile(`Broker: (broker\.\w+) on (http://127\.0\.0\.1:\d+)`)

func newOpsWorld(t *testing.T) *opsWorld {
	e := newEnv(t, anyPort).set("PROCQ_BROKER_METRICS", "127.0.0.1:0", "PROCQ_BROKER_MONITOR", "127.0.0.1:0",
		"PROCQ_BROKER_UI", "127.0.0.1:0", "PROCQ_QUEUE_NAME", "ops", "PROCQ_BROKER_EMBEDDED", "false")
	b := e.startBroker()
	w := &opsWorld{e: e, consumers: map[string]*proc{}, consumerMetrics: map[string]string{}}
	b.waitOutput(regexp.MustCompile(`Broker: broker\.ui on`), 20*time.Second)
	for _, m := range endpointRE.FindAllStringSubmatch(b.stdout.String(), -1) {
		switch m[1] {
		case "broker.metrics":
			w.metrics = m[2] + "/metrics"
		case "broker.monitor":
			w.monitor = m[2]
		case "broker.ui":
			w.ui = m[2]
		}
	}
	tok, err := os.ReadFile(filepath.Join(e.dir, "data", "token"))
	if err != nil {
		t.Fatal(err)
	}
	w.token = strings.TrimSpace(string(tok))
	e.set("PROCQ_METRICS_LISTEN", "127.0.0.1:0")
	for _, name := range []string{"C-1", "C-2"} {
		c := e.start("testconsumer", "--name", name)
		m := regexp.MustCompile(`metrics on (http://\S+)`).FindStringSubmatch(c.waitOutput(regexp.MustCompile(`metrics on http://\S+`), 30*time.Second))
		w.consumers[name], w.consumerMetrics[name] = c, m[1]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w.client, err = procq.Connect(ctx, procq.WithURL(e.url()), procq.WithToken(w.token), procq.WithQueue("ops"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.client.Close)
	return w
}

// get fetches url with the token (or without, when token is ""), and
// returns the status and body.
func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric sums the samples of name whose labels include every label given
// (`kind="square"`), in a Prometheus text exposition.
func metric(body, name string, labels ...string) float64 {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// status is "broker status --json".
func (w *opsWorld) status(t *testing.T) ops.Status {
	t.Helper()
	p := w.e.start("broker", "status", "--json")
	p.mustExit(0, 30*time.Second)
	var st ops.Status
	if err := json.Unmarshal([]byte(p.stdout.String()), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, p.stdout)
	}
	return st
}

func (w *opsWorld) waitStatus(t *testing.T, what string, cond func(ops.Status) bool) ops.Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := w.status(t)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(st, "", "  ")
			t.Fatalf("status did not show %s within 30s:\n%s", what, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func queueOf(st ops.Status, name string) ops.QueueStatus {
	for _, q := range st.Queues {
		if q.Name == name {
			return q
		}
	}
	return ops.QueueStatus{}
}

// TestOperations: metrics with exact counts, presence, the dead-letter
// tools and the dashboard in a real browser, on one broker.
func TestOperations(t *testing.T) {
	t.Parallel()
	w := newOpsWorld(t)

	t.Run("endpoints refuse requests without the token", func(t *testing.T) {
		for _, url := range []string{w.metrics, w.monitor + "/varz", w.ui + "/", w.ui + "/api/status",
			w.consumerMetrics["C-1"], w.consumerMetrics["C-2"]} {
			if code, _ := get(t, url, ""); code != http.StatusUnauthorized {
				t.Errorf("%s without the token: %d, want 401", url, code)
			}
			if code, _ := get(t, url, "wrong-"+w.token); code != http.StatusUnauthorized {
				t.Errorf("%s with a wrong token: %d, want 401", url, code)
			}
		}
		for _, url := range []string{w.metrics, w.monitor, w.ui} {
			if !strings.HasPrefix(url, "http://127.0.0.1:") {
				t.Errorf("endpoint %s does not bind loopback", url)
			}
		}
		code, body := get(t, w.monitor+"/healthz", w.token)
		if code != http.StatusOK || !strings.Contains(body, "ok") {
			t.Errorf("monitor /healthz with the token: %d %s", code, body)
		}
		if code, body := get(t, w.monitor+"/jsz", w.token); code != http.StatusOK || !strings.Contains(body, `"streams"`) {
			t.Errorf("monitor /jsz with the token: %d %.200s", code, body)
		}
	})

	t.Run("presence", func(t *testing.T) {
		st := w.waitStatus(t, "both consumers", func(st ops.Status) bool { return len(st.Consumers) == 2 })
		for _, c := range st.Consumers {
			p := w.consumers[c.Name]
			if p == nil || c.PID != p.cmd.Process.Pid || c.Queue != "ops" {
				t.Errorf("presence %+v, want C-1 and C-2 of queue ops with their pids", c)
			}
		}
	})

	t.Run("metrics count a map exactly", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		pool, err := w.client.Pool(ctx, procq.ChunkSize(1))
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close(ctx)
		args := make([]demo.SquareArgs, 10)
		for i := range args {
			args[i] = demo.SquareArgs{X: int64(i)}
		}
		args[3].X, args[7].X = 5_000_000_000, -5_000_000_000 // overflow: 2 fail
		_, err = procq.Map[demo.SquareArgs, int64](ctx, pool, demo.KindSquare, args)
		var me *procq.MapError
		if !errorsAs(err, &me) || len(me.Failed) != 2 {
			t.Fatalf("map: %v, want 2 failed", err)
		}
		// Read at once: a consumer counts a task (finished, failed,
		// dead-lettered) before it publishes the answer that may end the
		// map (consumer.TestTaskCountedBeforeItsAnswer).
		var started, succeeded, failed, dead float64
		for name, url := range w.consumerMetrics {
			code, body := get(t, url, w.token)
			if code != http.StatusOK {
				t.Fatalf("%s metrics: %d", name, code)
			}
			started += metric(body, "procq_tasks_started_total", `kind="square"`)
			succeeded += metric(body, "procq_tasks_total", `kind="square"`, `outcome="succeeded"`)
			failed += metric(body, "procq_tasks_total", `kind="square"`, `outcome="failed"`)
			dead += metric(body, "procq_tasks_dead_lettered_total", `kind="square"`)
			if metric(body, "process_resident_memory_bytes") <= 0 || !strings.Contains(body, "procq_task_duration_seconds_bucket") {
				t.Errorf("%s metrics lack the process and duration collectors", name)
			}
		}
		if started != 10 || succeeded != 8 || failed != 2 || dead != 2 {
			t.Errorf("consumers counted started %v, succeeded %v, failed %v, dead-lettered %v; want 10, 8, 2, 2", started, succeeded, failed, dead)
		}
		// The broker's gauges come from JetStream: back to zero after the
		// map (the last acks may land just after its results).
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, body := get(t, w.metrics, w.token)
			q := `queue="ops"`
			if metric(body, "procq_queue_pending", q) == 0 && metric(body, "procq_queue_in_flight", q) == 0 &&
				metric(body, "procq_queue_dead_letters", q) == 2 && metric(body, "procq_queue_consumers", q) == 2 &&
				metric(body, "procq_queue_waiting_pulls", q) >= 1 && metric(body, "procq_status_up") == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("broker gauges not settled after the map:\n%s", grepLines(body, "procq_queue_"))
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("dead letters: list, requeue, purge", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		js := w.client.JetStream()
		marker := filepath.Join(w.e.dir, "firsttry.marker")
		subject := protocol.WorkSubject("ops", "deadtest")
		for _, m := range []*nats.Msg{
			{Subject: subject, Data: []byte(fmt.Sprintf(`{"marker":%q}`, marker)), Header: nats.Header{protocol.HeaderKind: {"firsttry"}}},
			{Subject: subject, Data: []byte(`{}`), Header: nats.Header{protocol.HeaderKind: {"nope"}}},
			{Subject: subject, Data: []byte(`[1,`), Header: nats.Header{protocol.HeaderKind: {"square"}, protocol.HeaderChunk: {"2"}}},
		} {
			if _, err := js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		var dls []ops.DeadLetter
		deadline := time.Now().Add(30 * time.Second)
		for {
			p := w.e.start("broker", "dead", "list", "--queue", "ops", "--json")
			p.mustExit(0, 30*time.Second)
			dls = nil
			if err := json.Unmarshal([]byte(p.stdout.String()), &dls); err != nil {
				t.Fatalf("dead list --json: %v\n%s", err, p.stdout)
			}
			if len(dls) == 5 || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		// The map's two overflows, then the three of this test.
		var reasons []string
		byKind := map[string]ops.DeadLetter{}
		for _, d := range dls {
			reasons = append(reasons, d.Reason)
			byKind[d.Kind] = d
		}
		// Two consumers dead-letter them in any order: compare sorted.
		want := []string{"chunk body", "first try fails", "overflows int64", "overflows int64", `unknown task kind: "nope"`}
		if len(dls) != len(want) {
			t.Fatalf("dead letters %q, want %d", reasons, len(want))
		}
		slices.SortFunc(reasons, func(a, b string) int { return strings.Compare(reasonKey(a, want), reasonKey(b, want)) })
		for i, wr := range want {
			if !strings.Contains(reasons[i], wr) {
				t.Errorf("dead letter reasons %q, want one containing each of %q", reasons, want)
				break
			}
		}
		show := w.e.start("broker", "dead", "show", strconv.FormatUint(byKind["nope"].ID, 10))
		show.mustExit(0, 30*time.Second)
		if !strings.Contains(show.stdout.String(), "Procq-Kind: nope") || !strings.Contains(show.stdout.String(), "Body (2 bytes):\n{}") {
			t.Errorf("dead show:\n%s", show.stdout)
		}

		before := w.status(t)
		rq := w.e.start("broker", "dead", "requeue", strconv.FormatUint(byKind["firsttry"].ID, 10))
		rq.mustExit(0, 30*time.Second)
		// It runs again, on a consumer, and succeeds this time.
		deadline = time.Now().Add(30 * time.Second)
		for {
			var ok float64
			for _, url := range w.consumerMetrics {
				_, body := get(t, url, w.token)
				ok += metric(body, "procq_tasks_total", `kind="firsttry"`, `outcome="succeeded"`)
			}
			if ok == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the requeued task did not succeed within 30s (%v successes)", ok)
			}
			time.Sleep(100 * time.Millisecond)
		}
		purge := w.e.start("broker", "dead", "purge", "--queue", "ops", "--older-than", "0s")
		purge.mustExit(0, 30*time.Second)
		if !strings.Contains(purge.stdout.String(), "4 dead letters purged") {
			t.Errorf("purge said %q, want 4 purged", purge.stdout)
		}
		after := w.waitStatus(t, "the queue idle", func(st ops.Status) bool {
			q := queueOf(st, "ops")
			return q.Pending == 0 && q.InFlight == 0
		})
		if q := queueOf(after, "ops"); q.Dead != 0 {
			t.Errorf("queue ops still has %d dead letters", q.Dead)
		}
		// Nothing else changed: the tasks and results streams hold what
		// they held before.
		for _, name := range []string{protocol.TasksStream, protocol.ResultsStream} {
			if b, a := statusMsgs(before, name), statusMsgs(after, name); a != b {
				t.Errorf("%s: %d messages before, %d after", name, b, a)
			}
		}
	})

	t.Run("dashboard in a real browser", func(t *testing.T) { w.dashboard(t) })

	t.Run("a consumer killed disappears within its presence TTL", func(t *testing.T) {
		c := w.consumers["C-2"]
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		<-c.done
		killed := time.Now()
		st := w.waitStatus(t, "C-2 gone", func(st ops.Status) bool {
			return !slices.ContainsFunc(st.Consumers, func(p protocol.Presence) bool { return p.Name == "C-2" })
		})
		if gone := time.Since(killed); gone > 20*time.Second {
			t.Errorf("C-2 gone from status %v after kill -9, want within the 8s TTL", gone)
		}
		if len(st.Consumers) != 1 || st.Consumers[0].Name != "C-1" {
			t.Errorf("consumers %+v, want C-1 only", st.Consumers)
		}
	})
}

func statusMsgs(st ops.Status, name string) uint64 {
	for _, s := range st.Streams {
		if s.Name == name {
			return s.Messages
		}
	}
	return 0
}

func grepLines(body, prefix string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// reasonKey is the first of keys that reason contains, for sorting.
func reasonKey(reason string, keys []string) string {
	for _, k := range keys {
		if strings.Contains(reason, k) {
			return k
		}
	}
	return reason
}
