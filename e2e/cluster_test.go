package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/link"
	"github.com/procq/procq/protocol"
)

const clusterToken = "e2e-cluster-token"

// cluster is three bin/broker processes forming a NATS cluster on
// loopback, each with its own store, its routes mutual TLS and its client
// port requiring TLS with client certificates (a throw-away CA), and the
// client world that reaches them through all three tls:// URLs with
// queue.replicas 3.
type cluster struct {
	t       *testing.T
	clients *env
	nodes   [3]*env
	procs   [3]*proc
	urls    [3]string
	certs   *natstest.Certs
}

// startCluster starts the three nodes and declares the queue's streams
// with replicas replicas once the cluster has a meta leader.
func startCluster(t *testing.T, replicas int) *cluster {
	t.Helper()
	c := &cluster{t: t, certs: natstest.WriteCerts(t)}
	var routes [3]string
	for i := range 3 {
		c.urls[i] = "tls://" + natstest.FixedAddr(t)
		routes[i] = "nats-route://" + natstest.FixedAddr(t)
	}
	c.clients = newEnv(t, strings.Join(c.urls[:], ",")).set(
		"PROCQ_BROKER_EMBEDDED", "false", "PROCQ_BROKER_TOKEN", clusterToken,
		"PROCQ_QUEUE_REPLICAS", "3", "PROCQ_BROKER_CONNECT_TIMEOUT", "60s", "PROCQ_LOG_LEVEL", "debug",
		"PROCQ_BROKER_TLS_CERT", c.certs.Cert, "PROCQ_BROKER_TLS_KEY", c.certs.Key,
		"PROCQ_BROKER_TLS_CA", c.certs.CA, "PROCQ_BROKER_TLS_VERIFY_CLIENTS", "true")
	for i := range 3 {
		n := &env{t: t, dir: c.clients.dir, vars: maps.Clone(c.clients.vars)}
		n.set("PROCQ_BROKER_NAME", fmt.Sprintf("n%d", i+1),
			"PROCQ_BROKER_URL", c.urls[i],
			"PROCQ_BROKER_STORE_DIR", filepath.Join(c.clients.dir, fmt.Sprintf("data-n%d", i+1)),
			"PROCQ_BROKER_CLUSTER_NAME", "procq-e2e",
			"PROCQ_BROKER_CLUSTER_LISTEN", strings.TrimPrefix(routes[i], "nats-route://"),
			"PROCQ_BROKER_CLUSTER_ROUTES", strings.Join(routes[:], ","))
		c.nodes[i] = n
	}
	for i := range 3 {
		c.start(i)
	}
	// The streams exist once the cluster has a meta leader, so every test
	// starts from a cluster that can take work: with one replica, as a
	// single broker's topology would be, for TestCluster, whose first
	// producer (queue.replicas 3) updates them in place.
	js := c.js()
	_, err := link.Retry(context.Background(), 60*time.Second, nil, func(ctx context.Context) (*protocol.Topology, error) {
		return protocol.EnsureQueue(ctx, js, protocol.QueueConfig{Name: "demo", Replicas: replicas, AckWait: 2 * time.Second})
	})
	if err != nil {
		t.Fatalf("cluster not ready within 60s: %v", err)
	}
	t.Cleanup(func() {
		for _, p := range c.procs {
			if p != nil && p.running() {
				p.stop()
			}
		}
	})
	return c
}

// start starts node i and waits until it listens.
func (c *cluster) start(i int) {
	c.t.Helper()
	p := c.nodes[i].start("broker")
	p.waitOutput(listeningRE, 20*time.Second)
	c.procs[i] = p
}

// kill kills node i with kill -9.
func (c *cluster) kill(i int) {
	c.t.Helper()
	if err := c.procs[i].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatal(err)
	}
	c.procs[i].wait(10 * time.Second)
}

// js connects the test itself to the cluster, through every node.
func (c *cluster) js() jetstream.JetStream {
	c.t.Helper()
	return clusterJS(c.t, c.urls[:], nats.RootCAs(c.certs.CA), nats.ClientCert(c.certs.Cert, c.certs.Key))
}

// clusterJS connects the test to a cluster through every node of urls,
// reconnecting without end, with the cluster's token and opts; the
// connection is closed when the test ends.
func clusterJS(t *testing.T, urls []string, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(strings.Join(urls, ","), append([]nats.Option{nats.Token(clusterToken), nats.MaxReconnects(-1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// node is the index of the node named name (n1, n2, n3).
func node(t *testing.T, name string) int {
	t.Helper()
	var i int
	if _, err := fmt.Sscanf(name, "n%d", &i); err != nil || i < 1 || i > 3 {
		t.Fatalf("node name %q", name)
	}
	return i - 1
}

// leader is the node that leads stream name.
func (c *cluster) leader(js jetstream.JetStream, name string) int {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		c.t.Fatal(err)
	}
	return node(c.t, s.CachedInfo().Cluster.Leader)
}

// leaderRE is a node's log line saying it became the leader of a raft
// group a map's results depend on: the JetStream meta leader, a stream, a
// stream's consumer.
var leaderRE = regexp.MustCompile(`(?m)^time=(\S+) .*msg="(?:(Self is new JetStream cluster metadata leader)|JetStream cluster new stream leader for '\S+ > (PROCQ_TASKS|PROCQ_RESULTS)'|JetStream cluster new consumer leader for '\S+ > PROCQ_TASKS > (procq_demo)')".* name=(n\d)`)

// clientLogs are the producer's and consumers' log lines from from to to.
func (c *cluster) clientLogs(from, to time.Time) string {
	var b strings.Builder
	logs, _ := filepath.Glob(filepath.Join(c.clients.dir, "logs", "*.log"))
	for _, l := range logs {
		if strings.HasPrefix(filepath.Base(l), "broker") {
			continue
		}
		data, _ := os.ReadFile(l)
		for line := range strings.Lines(string(data)) {
			ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
			if at, err := time.Parse(time.RFC3339Nano, ts); err == nil && !at.Before(from) && !at.After(to) {
				b.WriteString(filepath.Base(l) + ": " + line)
			}
		}
	}
	return b.String()
}

// election is how long after t the cluster took to elect new leaders for
// what node led at t (of the groups leaderRE names): until a surviving node
// logged itself the last of them, 0 when it led none; led names them.
func (c *cluster) election(t time.Time, node string) (time.Duration, string) {
	c.t.Helper()
	type event struct {
		at          time.Time
		group, node string
	}
	var events []event
	logs, _ := filepath.Glob(filepath.Join(c.clients.dir, "logs", "broker-*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		for _, m := range leaderRE.FindAllStringSubmatch(string(b), -1) {
			at, err := time.Parse(time.RFC3339Nano, m[1])
			if err != nil {
				continue
			}
			group := m[3] + m[4]
			if m[2] != "" {
				group = "meta"
			}
			events = append(events, event{at, group, m[5]})
		}
	}
	slices.SortFunc(events, func(a, b event) int { return a.at.Compare(b.at) })
	leader := map[string]string{}
	var election time.Duration
	var led []string
	elected := map[string]bool{}
	for _, e := range events {
		switch {
		case e.at.Before(t):
			leader[e.group] = e.node
		case leader[e.group] == node && e.node != node && !elected[e.group]:
			elected[e.group] = true
			election = max(election, e.at.Sub(t))
			led = append(led, fmt.Sprintf("%s %.1fs", e.group, e.at.Sub(t).Seconds()))
		}
	}
	for g, n := range leader {
		if n == node && !elected[g] {
			led = append(led, g+" not re-elected")
		}
	}
	if len(led) == 0 {
		return 0, "none"
	}
	return election, strings.Join(led, ", ")
}

// longestGapAfter is the longest time between two lines matching re, of
// the gaps that end after t.
func (s *syncBuf) longestGapAfter(t time.Time, re *regexp.Regexp) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var gap time.Duration
	var prev time.Time
	for i, line := range strings.Split(s.b.String(), "\n") {
		if i >= len(s.times) || !re.MatchString(line) {
			continue
		}
		if at := s.times[i]; at.After(t) && !prev.IsZero() {
			gap = max(gap, at.Sub(prev))
		}
		prev = s.times[i]
	}
	return gap
}

var currentRE = regexp.MustCompile(`(?m)^PROCQ_TASKS .* 3/3 current\s*$`)

// waitCurrent waits until broker status shows all three replicas of
// PROCQ_TASKS current, and returns what it showed.
func (c *cluster) waitCurrent() string {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		// Right after a node's restart its streams elect and catch up, and
		// a status may run past its own 10 s reading them: that is what
		// this waits out, as long as the deadline allows.
		st := c.clients.start("broker", "status")
		code := st.wait(30 * time.Second)
		out := st.stdout.String()
		if code == 0 && currentRE.MatchString(out) {
			return out
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("PROCQ_TASKS replicas not all current within 60s (status exit %d):\n%s\n%s", code, out, st.stderr.String())
		}
		time.Sleep(time.Second)
	}
}

var connectedRE = regexp.MustCompile(`msg="(?:re)?connected to broker" .*?server=(n\d)`)

// The 3-node cluster, shared by its subtests, which run one after another:
// a map survives the kill -9 of the stream leader and of the producer's
// own node, the killed node rejoins and catches up, and the queue and pipe
// demos run on replicated streams.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1)
	js := c.js()
	const n = 2000 // the node dies at result 1000, with 1000 still to come through the failover

	// killMidMap kills the node victim picks once the map is well under
	// way, checks the map completes exactly, then restarts the node and
	// waits until it has caught up.
	killMidMap := func(t *testing.T, victim func(p *proc) int) {
		p := c.clients.squares(2, n, "--sleep", "0s", "--chunk-size", "1")
		p.waitOutput(regexp.MustCompile(`(?m)^square\(1000\) = `), 2*exitWait)
		i := victim(p)
		c.kill(i)
		killed := time.Now()
		p.mustExit(0, 3*exitWait)
		results, exact := squareResults(p.stdout.String(), n)
		if !exact {
			t.Errorf("%d results, exact %v: want %d exact results in order", results, exact, n)
		}
		// The pause is the cluster's own: its elections of what the node
		// led, or the ack wait of deliveries lost with it, and not the
		// clients' clocks on top (the results reader's stall check, a
		// publish's ack timeout: 10 to 33 s measured before they waited on
		// the LEADER_ELECTED advisories instead).
		pause := p.stdout.longestGapAfter(killed, squareRE)
		election, led := c.election(killed, fmt.Sprintf("n%d", i+1))
		t.Logf("node n%d killed (it led: %s); the map went on %.1fs after the kill (first result after it); longest pause %.1fs, election %.1fs",
			i+1, led, p.stdout.firstAfter(killed, squareRE).Sub(killed).Seconds(), pause.Seconds(), election.Seconds())
		// Measured on a machine of its own the pause is the election's
		// (BENCHMARKS.md, bench/cluster.sh: 0.1 s over it); beside the
		// whole suite it went 3.8 s over once, a pause this test could not
		// explain. What the clients logged then is printed, and the test
		// fails past the election plus a whole ack wait (a delivery lost
		// with the node), plus 3 s: the old stall checks paused 10-33 s.
		if pause > max(election, protocol.DefaultAckWait)+3*time.Second {
			t.Logf("results paused %.1fs, over %.1fs (the longer of the election and the ack wait) + 3s; the clients logged meanwhile:\n%s",
				pause.Seconds(), max(election, protocol.DefaultAckWait).Seconds(), c.clientLogs(killed, killed.Add(pause+time.Second)))
		}
		if bound := election + protocol.DefaultAckWait + 3*time.Second; pause > bound {
			t.Errorf("results paused %.1fs, over the cluster's own %.1fs (the election, %.1fs, and an ack wait) + 3s",
				pause.Seconds(), (election + protocol.DefaultAckWait).Seconds(), election.Seconds())
		}
		c.start(i)
		status := c.waitCurrent()
		if !strings.Contains(status, "CLUSTER procq-e2e  NODES 3") {
			t.Errorf("broker status does not show the 3-node cluster:\n%s", status)
		}
	}

	t.Run("replicas grown in place", func(t *testing.T) {
		p := c.clients.squares(2, 20, "--sleep", "0s")
		p.mustExit(0, exitWait)
		if _, exact := squareResults(p.stdout.String(), 20); !exact {
			t.Errorf("results not exact")
		}
		logs, _ := filepath.Glob(filepath.Join(c.clients.dir, "logs", "*.log"))
		grown := regexp.MustCompile(`msg="stream replicas changed" .*stream=PROCQ_TASKS from=1 to=3`)
		found := false
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			found = found || grown.Match(b)
		}
		if !found {
			t.Errorf("no log line says PROCQ_TASKS went from 1 to 3 replicas")
		}
		// The firings' way into the task stream grew with it.
		src, err := js.PushConsumer(t.Context(), protocol.SchedStream, protocol.SourceDurable(protocol.TasksStream))
		if err != nil || src.CachedInfo().Config.Replicas != 3 {
			t.Errorf("the task stream's source consumer: %v, want it on 3 replicas", err)
			if err == nil {
				t.Logf("its replicas: %d", src.CachedInfo().Config.Replicas)
			}
		}
		c.waitCurrent()
	})
	t.Run("stream leader killed mid-map", func(t *testing.T) {
		killMidMap(t, func(*proc) int { return c.leader(js, protocol.TasksStream) })
	})
	t.Run("producer's node killed mid-map", func(t *testing.T) {
		killMidMap(t, func(p *proc) int {
			b, err := os.ReadFile(filepath.Join(c.clients.dir, "logs", "producer.log"))
			if err != nil {
				t.Fatal(err)
			}
			m := connectedRE.FindAllStringSubmatch(string(b), -1)
			if len(m) == 0 {
				t.Fatalf("producer.log names no server it connected to")
			}
			return node(t, m[len(m)-1][1])
		})
	})
	t.Run("queue demo", func(t *testing.T) {
		p := c.clients.start("producer", "queue")
		p.mustExit(0, exitWait)
		wantQueueDemo(t, p.stdout.String())
	})
	t.Run("pipe demo", func(t *testing.T) {
		p := c.clients.start("producer", "pipe", "--pause", "0s")
		p.mustExit(0, exitWait)
		wantPipeDemo(t, p.stdout.String())
	})
	t.Run("clients without TLS or with another CA are refused in one line", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			vars []string
			want string
		}{
			{"plaintext", []string{"PROCQ_BROKER_TLS_CERT", "", "PROCQ_BROKER_TLS_KEY", "", "PROCQ_BROKER_TLS_CA", "",
				"PROCQ_BROKER_TLS_VERIFY_CLIENTS", "false", "PROCQ_BROKER_URL", strings.ReplaceAll(strings.Join(c.urls[:], ","), "tls://", "nats://")},
				"the broker's certificate is not signed by the system's roots (broker.tls.ca is empty)"},
			{"another CA", []string{"PROCQ_BROKER_TLS_CA", c.certs.OtherCA}, "is not signed by broker.tls.ca " + c.certs.OtherCA},
			{"no client certificate", []string{"PROCQ_BROKER_TLS_CERT", "", "PROCQ_BROKER_TLS_KEY", "", "PROCQ_BROKER_TLS_VERIFY_CLIENTS", "false"},
				"the broker requires a client certificate"},
		} {
			e := &env{t: t, dir: c.clients.dir, vars: maps.Clone(c.clients.vars)}
			p := e.set(tt.vars...).start("consumer", "--name", "refused")
			p.mustExit(1, exitWait)
			msg := strings.TrimSpace(p.stderr.String())
			if !strings.Contains(msg, tt.want) || strings.Count(msg, "\n") != 0 {
				t.Errorf("%s: stderr %q, want one line saying %q", tt.name, msg, tt.want)
			}
		}
	})
	t.Run("more replicas than nodes", func(t *testing.T) {
		wide := &env{t: t, dir: c.clients.dir, vars: maps.Clone(c.clients.vars)}
		p := wide.set("PROCQ_QUEUE_REPLICAS", "5").start("producer", "queue")
		p.mustExit(2, exitWait)
		if msg := p.stderr.String(); !strings.Contains(msg, "queue.replicas") || !strings.Contains(msg, "PROCQ_QUEUE_REPLICAS") {
			t.Errorf("stderr does not name queue.replicas and its source:\n%s", msg)
		}
		if got := c.waitCurrent(); !strings.Contains(got, "3/3 current") {
			t.Errorf("the refused update changed the streams:\n%s", got)
		}
	})
}

// Schedules survive the PROCQ_SCHED leader killed, on a 3-node cluster
// of their own whose streams have three replicas from the start: it runs
// beside TestCluster, whose kills it would otherwise wait for.
func TestClusterScheduleFailover(t *testing.T) {
	t.Parallel()
	scheduleFailover(t, startCluster(t, 3))
}

// Bad cluster configuration is refused before anything starts: exit 2,
// naming the key and where its value came from.
func TestClusterBadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, key, source string
		kv                []string
	}{
		{"routes without a cluster name", "broker.cluster.routes", "environment PROCQ_BROKER_CLUSTER_ROUTES",
			[]string{"PROCQ_BROKER_CLUSTER_ROUTES", "nats-route://127.0.0.1:6222"}},
		{"a clustered node without a shared token", "broker.token", "",
			[]string{"PROCQ_BROKER_CLUSTER_NAME", "c", "PROCQ_BROKER_CLUSTER_LISTEN", "127.0.0.1:0"}},
		{"more replicas than routes", "queue.replicas", "environment PROCQ_QUEUE_REPLICAS",
			[]string{"PROCQ_BROKER_CLUSTER_NAME", "c", "PROCQ_QUEUE_REPLICAS", "3",
				"PROCQ_BROKER_CLUSTER_ROUTES", "nats-route://127.0.0.1:6222"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, anyPort).set(tt.kv...)
			b := e.start("broker")
			b.mustExit(2, exitWait)
			msg := b.stderr.String()
			if !strings.Contains(msg, tt.key) || !strings.Contains(msg, tt.source) {
				t.Errorf("stderr does not name %s (from %q):\n%s", tt.key, tt.source, msg)
			}
			if _, err := os.Stat(filepath.Join(e.dir, "data", "token")); err == nil {
				t.Errorf("a refused node generated a token")
			}
		})
	}
}
