package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
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
// table there; NETFAULT_FULL=1 (make reliability) runs every
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
func fullNetFault() bool { return os.Getenv("NETFAULT_FULL") != "" }

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
	// The streams exist once the nodes have found each other and elected
	// a meta leader: until then placement fails ("no suitable peers"),
	// which is retried here as well as what link.Retry calls transient.
	js := c.js()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := link.Retry(context.Background(), 10*time.Second, nil, func(ctx context.Context) (*protocol.Topology, error) {
			return protocol.EnsureQueue(ctx, js, protocol.QueueConfig{Name: "demo", Replicas: 3, AckWait: 2 * time.Second})
		})
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster not ready within 60s: %v", err)
		}
		t.Logf("waiting for the cluster to take the queue's streams: %v", err)
		time.Sleep(time.Second)
	}
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
	return e.startCmd(net.Command(i, filepath.Join(binDir, exe), args...), exe+"@"+net.NS(i)+" "+strings.Join(args, " "))
}

// js connects the test to the cluster through every node.
func (c *netCluster) js() jetstream.JetStream {
	c.t.Helper()
	return clusterJS(c.t, c.urls[:], nats.PingInterval(2*time.Second), nats.MaxPingsOutstanding(2))
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
	// ci: in the short set make test runs; the others run only in make
	// reliability (NETFAULT_FULL).
	ci bool
	// setup, if set, runs before the map starts.
	setup func(t *testing.T)
	// fault runs the fault once the map is under way and returns when
	// it is healed; it may note what it did.
	fault func(t *testing.T, w *env, p *proc) string
	// held is how long the fault holds what it holds whatever the cluster
	// does, added to quorumPause: a stalled route inside the full mesh of
	// routes, which NATS has no way around, holds what it carries until it
	// moves again or nats-server drops it (its 10 s write deadline).
	held time.Duration
}

// netRow is one row of the "Cluster under network faults" table.
type netRow struct {
	scenario string
	v        netfault.Verdict
	pause    time.Duration
	took     time.Duration
	note     string
}

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
	appendRow(t, "NETFAULT_OUT", line)
}

// run maps square over 1..n with tasks of 1 ms, runs the scenario's
// fault once the map is under way, and checks and reports every input.
func (c *netCluster) run(t *testing.T, s scenario, n int) {
	t.Helper()
	c.waitHealthy()
	// Its own log dir: the checker reads this map's producer log alone.
	w := &env{t: t, dir: c.clients.dir, vars: maps.Clone(c.clients.vars)}
	w.set("PROCQ_LOG_DIR", filepath.Join(c.clients.dir, "logs-"+strings.NewReplacer(" ", "-", "/", "-").Replace(t.Name())))
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		logs, _ := filepath.Glob(filepath.Join(w.vars["PROCQ_LOG_DIR"], "*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			t.Logf("--- %s ends:\n%s", filepath.Base(l), lastLines(string(b), 25))
		}
	})
	if s.consumers != nil {
		w.set("PROCQ_CONSUMERS_SPAWN", "false", "PROCQ_CONSUMERS_COUNT", "2")
	}
	if s.setup != nil {
		s.setup(t)
	}
	start := time.Now()
	p := w.squares(2, n, "--sleep", "1ms", "--chunk-size", "1")
	if s.consumers != nil {
		s.consumers(w)
	}
	mid := n / 10
	t.Logf("waiting for square(%d) before the fault (at most 120s)", mid)
	midRE := regexp.MustCompile(fmt.Sprintf(`(?m)^square\(%d\) = `, mid))
	for deadline := time.Now().Add(120 * time.Second); !midRE.MatchString(p.stdout.String()) && p.running(); {
		if time.Now().After(deadline) {
			t.Fatalf("no square(%d) within 120s", mid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	at := time.Now()
	note := "the map ended before the fault"
	faulted := p.running() // else: it ended before (its row says how)
	if faulted {
		note = s.fault(t, w, p)
		t.Logf("fault healed %.1fs after it began; waiting for the producer to exit", time.Since(at).Seconds())
	}
	code := p.wait(240 * time.Second)
	log, _ := os.ReadFile(filepath.Join(w.vars["PROCQ_LOG_DIR"], "producer.log"))
	v := netfault.Check(n, p.stdout.String(), p.stderr.String(), string(log), code)
	pause := p.stdout.longestGapAfter(at, squareRE)
	if first := p.stdout.firstAfter(at, squareRE); !first.IsZero() {
		pause = max(pause, first.Sub(at))
	}
	took := time.Since(start)
	note += fmt.Sprintf("; %.0f inputs/s", float64(n)/took.Seconds())
	r := netRow{scenario: s.name, v: v, pause: pause, took: took, note: note}
	netReport(t, r)
	problems := v.Problems(s.quorum)
	if !faulted {
		problems = append(problems, "the map ended before the fault: the scenario tested nothing")
	}
	if !s.quorum && v.MapFailed {
		// Every scenario that takes the quorum away gives it back well
		// within queue.put_timeout (30 s): the puts wait, and the map
		// completes.
		problems = append(problems, "the map failed although the quorum was back within queue.put_timeout: "+v.Reason)
	}
	if bound := quorumPause + s.held; s.quorum && pause > bound {
		problems = append(problems, fmt.Sprintf("results paused %.1fs while a quorum was up (bound %v: elections, the ack wait and a client's ping timeout, and %v the fault holds)",
			pause.Seconds(), bound, s.held))
	}
	if len(problems) > 0 {
		t.Errorf("%s: %s\nstderr:\n%s", s.name, strings.Join(problems, "; "), lastLines(p.stderr.String(), 20))
	}
}

// quorumPause bounds the longest pause in results under a fault a quorum
// survives.
const quorumPause = 15 * time.Second

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

// TestNetFault runs the partition, pause and crash scenarios on one
// cluster, one after another.
func TestNetFault(t *testing.T) {
	t.Parallel()
	net := netfault.New(t, 4)
	c := startNetCluster(t, net, nil, nil)
	js := c.js()
	n := 1000
	if fullNetFault() {
		n = 6000
	}
	others := func(i int) []int {
		var o []int
		for j := range 3 {
			if j != i {
				o = append(o, j)
			}
		}
		return o
	}
	cutOff := func(what string, pick func(w *env) int, d time.Duration) func(t *testing.T, w *env, p *proc) string {
		return func(t *testing.T, w *env, p *proc) string {
			i := pick(w)
			c.cutFor(d, func() { c.net.Isolate(i) })
			return fmt.Sprintf("%s n%d's link down %v", what, i+1, d)
		}
	}
	tasksLeader := func(*env) int { return c.leaderOf(js, protocol.TasksStream) }
	producerNode := func(w *env) int { return connectedNode(t, w, "producer.log") }
	// A node a consumer is connected to, other than the producer's where
	// there is one.
	consumerNode := func(w *env) int {
		pn := producerNode(w)
		i := connectedNode(t, w, "consumer-C-1.log")
		if j := connectedNode(t, w, "consumer-C-2.log"); i == pn {
			i = j
		}
		return i
	}
	scenarios := []scenario{
		{name: "PROCQ_TASKS leader cut off", quorum: true, ci: true,
			fault: cutOff("the PROCQ_TASKS leader,", tasksLeader, cut(20*time.Second, 3*time.Second))},
		{name: "the producer's node cut off", quorum: true,
			fault: cutOff("the producer's node,", producerNode, cut(20*time.Second, 3*time.Second))},
		{name: "a consumer's node cut off", quorum: true,
			fault: cutOff("a consumer's node,", consumerNode, cut(20*time.Second, 3*time.Second))},
		{name: "a consumer alone cut off", quorum: true,
			consumers: func(w *env) []*proc {
				return []*proc{w.start("consumer", "--name", "C-1"), w.startNS(c.net, 3, "consumer", "--name", "C-2")}
			},
			fault: func(t *testing.T, w *env, p *proc) string {
				d := cut(20*time.Second, 3*time.Second)
				c.cutFor(d, func() { c.net.Isolate(3) })
				return fmt.Sprintf("consumer C-2's own namespace cut off %v", d)
			}},
		{name: "a 1-against-2 split flapping every 3 s", quorum: true, fault: func(t *testing.T, w *env, p *proc) string {
			d := cut(30*time.Second, 9*time.Second)
			var lone []string
			for r, end := 0, time.Now().Add(d); time.Now().Before(end); r++ {
				c.net.Heal()
				k := (c.leaderOf(js, protocol.TasksStream) + r) % 3 // the leader first
				c.net.Split([]int{k}, others(k))
				lone = append(lone, fmt.Sprintf("n%d", k+1))
				time.Sleep(3 * time.Second)
			}
			c.net.Heal()
			return fmt.Sprintf("for %v, alone in turn: %s", d, strings.Join(lone, " "))
		}},
		{name: "PROCQ_TASKS leader paused (SIGSTOP), then continued", quorum: true, ci: true, fault: func(t *testing.T, w *env, p *proc) string {
			i := c.leaderOf(js, protocol.TasksStream)
			d := cut(15*time.Second, 3*time.Second)
			pid := c.procs[i].cmd.Process.Pid
			if err := netfault.Pause(pid); err != nil {
				t.Fatal(err)
			}
			time.Sleep(d)
			if err := netfault.Resume(pid); err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("n%d stopped %v", i+1, d)
		}},
		{name: "two of three nodes killed (quorum lost), restarted", quorum: false, fault: func(t *testing.T, w *env, p *proc) string {
			i := c.leaderOf(js, protocol.TasksStream)
			j := others(i)[0]
			d := cut(10*time.Second, 5*time.Second)
			c.kill(i)
			c.kill(j)
			time.Sleep(d)
			c.start(i)
			c.start(j)
			return fmt.Sprintf("n%d (the leader) and n%d killed (kill -9), restarted after %v; queue.put_timeout 30s", i+1, j+1, d)
		}},
		{name: "all three nodes killed at once, restarted", quorum: false, ci: true, fault: func(t *testing.T, w *env, p *proc) string {
			for i := range 3 {
				_ = c.procs[i].cmd.Process.Signal(syscall.SIGKILL)
			}
			for i := range 3 {
				c.procs[i].wait(10 * time.Second)
			}
			time.Sleep(2 * time.Second)
			for i := range 3 {
				c.start(i)
			}
			return "kill -9 of n1, n2, n3; restarted 2 s later"
		}},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			if !s.ci && !fullNetFault() {
				t.Skip("in the full set only: make reliability (NETFAULT_FULL=1)")
			}
			c.run(t, s, n)
		})
	}
}

// TestNetFaultLinks runs the scenarios of slow and stalled links: every
// route between two nodes and every client link goes through a toxiproxy
// (the nodes' direct paths to each other are cut, so a route cannot
// bypass its proxy); a clean map first, for the throughput the latency
// is compared with.
func TestNetFaultLinks(t *testing.T) {
	t.Parallel()
	net := netfault.New(t, 3)
	proxies := netfault.NewProxies(t)
	var links []*netfault.Proxy
	route := map[[2]int]*netfault.Proxy{}
	for i := range 3 {
		for j := range 3 {
			if i != j {
				p := proxies.Add(fmt.Sprintf("route-n%d-n%d", i+1, j+1), net.HostAddr()+":0", net.Addr(j)+":6222")
				route[[2]int{i, j}] = p
				links = append(links, p)
				net.Drop(i, j)
			}
		}
	}
	var clientURLs []string
	for i := range 3 {
		p := proxies.Add(fmt.Sprintf("client-n%d", i+1), "127.0.0.1:0", net.Addr(i)+":4222")
		links = append(links, p)
		clientURLs = append(clientURLs, "nats://"+p.Addr())
	}
	c := startNetCluster(t, net, clientURLs, func(i int) []string {
		var r []string
		for j := range 3 {
			if j != i {
				r = append(r, "nats-route://"+route[[2]int{i, j}].Addr())
			}
		}
		return r
	})
	js := c.js()
	n := 1000
	if fullNetFault() {
		n = 6000
	}
	scenarios := []scenario{
		{name: "clean links (through the proxies)", quorum: true, fault: func(t *testing.T, w *env, p *proc) string {
			return "no fault: the throughput the latency row is compared with"
		}},
		{name: "50 ms latency, 10 ms jitter on every link", quorum: true,
			setup: func(t *testing.T) {
				for _, l := range links {
					l.Latency(50, 10)
				}
				t.Cleanup(func() {
					for _, l := range links {
						l.Clear()
					}
				})
			},
			fault: func(t *testing.T, w *env, p *proc) string {
				return "every route and client link, each way, from the map's start"
			}},
		{name: "a stalled route (not closed) from the PROCQ_TASKS leader", quorum: true, ci: true, held: cut(20*time.Second, 3*time.Second), fault: func(t *testing.T, w *env, p *proc) string {
			i := c.leaderOf(js, protocol.TasksStream)
			j := (i + 1) % 3
			d := cut(20*time.Second, 3*time.Second)
			route[[2]int{i, j}].Stall()
			route[[2]int{j, i}].Stall()
			time.Sleep(d)
			route[[2]int{i, j}].Clear()
			route[[2]int{j, i}].Clear()
			return fmt.Sprintf("the route n%d-n%d stalled both ways %v", i+1, j+1, d)
		}},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			if !s.ci && !fullNetFault() {
				t.Skip("in the full set only: make reliability (NETFAULT_FULL=1)")
			}
			c.run(t, s, n)
		})
	}
}
