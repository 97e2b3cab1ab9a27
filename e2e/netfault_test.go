package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
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

	"github.com/procq/procq/internal/netfault"
	"github.com/procq/procq/link"
	"github.com/procq/procq/protocol"
)

// The cluster under network faults: three bin/broker nodes, each in its
// own network namespace on a private bridge (internal/netfault), the
// producer and its consumers on the host side (or a consumer in a fourth
// namespace), queue.replicas 3. Each scenario runs a square map of
// tasks of 1 ms through one fault and checks every input in Jepsen's
// terms (netfault.Check). With NETFAULT_OUT=<file> set, each scenario
// appends its row of RELIABILITY.md's "Cluster under network faults"
// table there; PROCQ_NETFAULT_FULL=1 (make reliability) runs every
// scenario with its full fault (20 s cuts), else a short set with short
// faults runs (make test).

// netCluster is three broker nodes in namespaces 0-2 of net; namespace 3
// is for a client of its own.
type netCluster struct {
	t       *testing.T
	net     *netfault.Net
	clients *env
	nodes   [3]*env
	procs   [3]*proc
	urls    [3]string
	mu      sync.Mutex
}

// fullNetFault says whether the full scenarios run (make reliability).
func fullNetFault() bool { return os.Getenv("PROCQ_NETFAULT_FULL") != "" }

// startNetCluster starts the nodes; routes[i] lists the route URLs node i
// dials (nil: every node's own address).
func startNetCluster(t *testing.T, net *netfault.Net, clientURLs []string, routes func(i int) []string) *netCluster {
	t.Helper()
	c := &netCluster{t: t, net: net}
	var direct [3]string
	for i := range 3 {
		c.urls[i] = "nats://" + net.Addr(i) + ":4222"
		direct[i] = "nats-route://" + net.Addr(i) + ":6222"
	}
	if clientURLs == nil {
		clientURLs = c.urls[:]
	}
	c.clients = newEnv(t, strings.Join(clientURLs, ",")).set(
		"PROCQ_BROKER_EMBEDDED", "false", "PROCQ_BROKER_TOKEN", clusterToken,
		"PROCQ_QUEUE_REPLICAS", "3", "PROCQ_BROKER_CONNECT_TIMEOUT", "60s", "PROCQ_LOG_LEVEL", "debug",
		"PROCQ_CONSUMERS_MAX_RESTARTS", "50")
	for i := range 3 {
		r := direct[:]
		if routes != nil {
			r = routes(i)
		}
		n := &env{t: t, dir: c.clients.dir, vars: maps.Clone(c.clients.vars)}
		n.set("PROCQ_BROKER_NAME", fmt.Sprintf("n%d", i+1),
			"PROCQ_BROKER_URL", c.urls[i],
			"PROCQ_BROKER_STORE_DIR", filepath.Join(c.clients.dir, fmt.Sprintf("data-n%d", i+1)),
			"PROCQ_BROKER_CLUSTER_NAME", "procq-netfault",
			"PROCQ_BROKER_CLUSTER_LISTEN", net.Addr(i)+":6222",
			"PROCQ_BROKER_CLUSTER_ROUTES", strings.Join(r, ","))
		c.nodes[i] = n
	}
	// Stop the nodes before the network goes (cleanups run last first).
	t.Cleanup(func() {
		for _, p := range c.procs {
			if p != nil && p.running() {
				_ = p.cmd.Process.Signal(syscall.SIGCONT)
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
	})
	for i := range 3 {
		c.start(i)
	}
	js := c.js()
	_, err := link.Retry(context.Background(), 60*time.Second, nil, func(ctx context.Context) (*protocol.Topology, error) {
		return protocol.EnsureQueue(ctx, js, protocol.QueueConfig{Name: "demo", Replicas: 3, AckWait: 2 * time.Second})
	})
	if err != nil {
		t.Fatalf("cluster not ready within 60s: %v", err)
	}
	return c
}

var nsListeningRE = regexp.MustCompile(`Broker: listening on nats://`)

// start starts node i in its namespace and waits until it listens.
func (c *netCluster) start(i int) {
	c.t.Helper()
	p := c.nodes[i].startNS(c.net, i, "broker")
	p.waitOutput(nsListeningRE, 30*time.Second)
	c.mu.Lock()
	c.procs[i] = p
	c.mu.Unlock()
}

// kill kills node i with kill -9 and waits for it to be gone.
func (c *netCluster) kill(i int) {
	c.t.Helper()
	_ = c.procs[i].cmd.Process.Signal(syscall.SIGKILL)
	c.procs[i].wait(10 * time.Second)
}

// startNS runs bin/<exe> with args in namespace i of net, in the test
// world (ip netns exec replaces itself with the executable: the process
// is the executable's).
func (e *env) startNS(net *netfault.Net, i int, exe string, args ...string) *proc {
	e.t.Helper()
	cmd := net.Command(i, filepath.Join(binDir, exe), args...)
	cmd.Dir = e.dir
	cmd.Env = e.environ()
	p := &proc{t: e.t, name: exe + "@" + net.NS(i) + " " + strings.Join(args, " "), cmd: cmd,
		stdout: &syncBuf{}, stderr: &syncBuf{}, done: make(chan struct{})}
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

// js connects the test to the cluster through every node.
func (c *netCluster) js() jetstream.JetStream {
	c.t.Helper()
	nc, err := nats.Connect(strings.Join(c.urls[:], ","), nats.Token(clusterToken), nats.MaxReconnects(-1),
		nats.PingInterval(2*time.Second), nats.MaxPingsOutstanding(2))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	return js
}

// leaderOf is the node that leads stream name, asked until a leader
// answers (after a fault the streams may still be electing).
func (c *netCluster) leaderOf(js jetstream.JetStream, name string) int {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := js.Stream(ctx, name)
		cancel()
		if err == nil && s.CachedInfo().Cluster != nil && s.CachedInfo().Cluster.Leader != "" {
			return node(c.t, s.CachedInfo().Cluster.Leader)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no leader of %s within 30s: %v", name, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

var netCurrentRE = regexp.MustCompile(`(?m)^PROCQ_(TASKS|RESULTS) .* 3/3 current\s*$`)

// waitHealthy waits until broker status shows PROCQ_TASKS and
// PROCQ_RESULTS with all three replicas current: the next scenario
// starts from a whole cluster.
func (c *netCluster) waitHealthy() {
	c.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		st := c.clients.start("broker", "status")
		code := st.wait(30 * time.Second)
		out := st.stdout.String()
		if code == 0 && len(netCurrentRE.FindAllString(out, -1)) == 2 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("PROCQ_TASKS and PROCQ_RESULTS not all 3/3 current within 90s (status exit %d):\n%s\n%s", code, out, st.stderr.String())
		}
		time.Sleep(time.Second)
	}
}

// scenario is one fault during one map.
type scenario struct {
	name string
	// quorum says a majority of the nodes stayed up and connected: a
	// failed map then counts as a failure.
	quorum bool
	// spawn false: the test starts the two consumers itself (consumers
	// returns them).
	consumers func(w *env) []*proc
	// fault runs the fault once the map is under way and returns when
	// it is healed; it may note what it did.
	fault func(t *testing.T, w *env, p *proc) string
}

// netRow is one row of the "Cluster under network faults" table.
type netRow struct {
	scenario string
	v        netfault.Verdict
	pause    time.Duration
	took     time.Duration
	note     string
}

var netReportMu sync.Mutex

func (r netRow) line() string {
	failed := "no"
	if r.v.MapFailed {
		failed = "yes: " + strings.ReplaceAll(r.v.Reason, "|", "/")
	}
	return fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %d | %d | %s | %.1f | %.1f | %s |",
		r.scenario, r.v.N, r.v.Submitted, r.v.Acked, r.v.OK, r.v.Lost, r.v.Duplicated, r.v.Unknown,
		failed, r.pause.Seconds(), r.took.Seconds(), r.note)
}

func netReport(t *testing.T, r netRow) {
	t.Helper()
	line := r.line()
	t.Log(line)
	path := os.Getenv("NETFAULT_OUT")
	if path == "" {
		return
	}
	netReportMu.Lock()
	defer netReportMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("netfault table: %v", err)
		return
	}
	defer f.Close()
	fmt.Fprintln(f, line)
}

// run maps square over 1..n with tasks of 1 ms, runs the scenario's
// fault once the map is under way, and checks and reports every input.
func (c *netCluster) run(t *testing.T, s scenario, n int) {
	t.Helper()
	c.waitHealthy()
	// Its own log dir: the checker reads this map's producer log alone.
	w := &env{t: t, dir: c.clients.dir, vars: maps.Clone(c.clients.vars)}
	w.set("PROCQ_LOG_DIR", filepath.Join(c.clients.dir, "logs-"+strings.NewReplacer(" ", "-", "/", "-").Replace(t.Name())))
	if s.consumers != nil {
		w.set("PROCQ_CONSUMERS_SPAWN", "false", "PROCQ_CONSUMERS_COUNT", "2")
	}
	start := time.Now()
	p := w.squares(2, n, "--sleep", "1ms", "--chunk-size", "1")
	if s.consumers != nil {
		s.consumers(w)
	}
	mid := n / 10
	t.Logf("waiting for square(%d) before the fault", mid)
	p.waitOutput(regexp.MustCompile(fmt.Sprintf(`(?m)^square\(%d\) = `, mid)), 120*time.Second)
	at := time.Now()
	note := s.fault(t, w, p)
	t.Logf("fault healed %.1fs after it began; waiting for the producer to exit", time.Since(at).Seconds())
	code := p.wait(240 * time.Second)
	log, _ := os.ReadFile(filepath.Join(w.vars["PROCQ_LOG_DIR"], "producer.log"))
	v := netfault.Check(n, p.stdout.String(), p.stderr.String(), string(log), code)
	pause := p.stdout.longestGapAfter(at, squareRE)
	if first := p.stdout.firstAfter(at, squareRE); !first.IsZero() {
		pause = max(pause, first.Sub(at))
	}
	r := netRow{scenario: s.name, v: v, pause: pause, took: time.Since(start), note: note}
	netReport(t, r)
	if problems := v.Problems(s.quorum); len(problems) > 0 {
		t.Errorf("%s: %s\nstderr:\n%s", s.name, strings.Join(problems, "; "), lastLines(p.stderr.String(), 20))
	}
}

// lastLines is the last k lines of s.
func lastLines(s string, k int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-k):], "\n")
}

// connectedNode is the node whose connection the named log last
// reported.
func connectedNode(t *testing.T, w *env, log string) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(w.vars["PROCQ_LOG_DIR"], log))
		if m := connectedRE.FindAllStringSubmatch(string(b), -1); len(m) > 0 {
			return node(t, m[len(m)-1][1])
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s names no server it connected to within 30s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cutFor runs fault, waits d, heals.
func (c *netCluster) cutFor(d time.Duration, fault func()) {
	fault()
	time.Sleep(d)
	c.net.Heal()
}

// durations of the faults: full (make reliability) or short (make test).
func cut(full, short time.Duration) time.Duration {
	if fullNetFault() {
		return full
	}
	return short
}

// TestNetFault runs the partition scenarios on one cluster, one after
// another.
func TestNetFault(t *testing.T) {
	t.Parallel()
	net := netfault.New(t, 4)
	c := startNetCluster(t, net, nil, nil)
	js := c.js()
	n := 3000
	if fullNetFault() {
		n = 6000
	}
	scenarios := []scenario{
		{name: "PROCQ_TASKS leader cut off", quorum: true, fault: func(t *testing.T, w *env, p *proc) string {
			i := c.leaderOf(js, protocol.TasksStream)
			d := cut(20*time.Second, 5*time.Second)
			c.cutFor(d, func() { c.net.Isolate(i) })
			return fmt.Sprintf("n%d's link down %v", i+1, d)
		}},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) { c.run(t, s, n) })
	}
}

var _ = errors.New
var _ = exec.Command
var _ = strconv.Itoa
