package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/procq/procq/demo"
	"github.com/procq/procq/link"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// validate checks every value that decoding alone cannot. Its errors are
// *Error with the key set; Load fills in the source.
func (c *Config) validate() error {
	const (
		day   = 24 * time.Hour
		procs = protocol.MaxProcesses // processes, consumers, slots
	)
	checks := []struct {
		key string
		err error
	}{
		{"broker.url", each(c.Broker.URLs(), checkURL)},
		{"broker.name", serverName(c.Broker.Name)},
		{"broker.cluster.name", serverName(c.Broker.Cluster.Name)},
		{"broker.cluster.routes", c.needsCluster(len(c.Broker.Cluster.Routes) > 0)},
		{"broker.cluster.listen", c.needsCluster(c.Broker.Cluster.Listen != "")},
		{"broker.cluster.listen", hostPort(c.Broker.Cluster.Listen)},
		{"broker.metrics", hostPort(c.Broker.Metrics)},
		{"broker.monitor", hostPort(c.Broker.Monitor)},
		{"broker.ui", hostPort(c.Broker.UI)},
		{"broker.tls.cert", readable(c.Broker.TLS.Cert)},
		{"broker.tls.key", readable(c.Broker.TLS.Key)},
		{"broker.tls.ca", readable(c.Broker.TLS.CA)},
		{"broker.tls.key", pair(c.Broker.TLS.Cert, c.Broker.TLS.Key, "broker.tls.cert")},
		{"broker.tls.cert", pair(c.Broker.TLS.Key, c.Broker.TLS.Cert, "broker.tls.key")},
		{"broker.tls.verify_clients", needs(c.Broker.TLS.VerifyClients, c.Broker.TLS.Cert != "" && c.Broker.TLS.CA != "",
			"broker.tls.cert, broker.tls.key and broker.tls.ca: the broker verifies clients against the CA, and clients present their certificate")},
		{"broker.cluster.tls.cert", readable(c.Broker.Cluster.TLS.Cert)},
		{"broker.cluster.tls.key", readable(c.Broker.Cluster.TLS.Key)},
		{"broker.cluster.tls.ca", readable(c.Broker.Cluster.TLS.CA)},
		{"broker.cluster.tls.key", pair(c.Broker.Cluster.TLS.Cert, c.Broker.Cluster.TLS.Key, "broker.cluster.tls.cert")},
		{"broker.cluster.tls.cert", pair(c.Broker.Cluster.TLS.Key, c.Broker.Cluster.TLS.Cert, "broker.cluster.tls.key")},
		{"broker.creds", readable(c.Broker.Creds)},
		{"broker.nkey", readable(c.Broker.NKey)},
		{"broker.password", pair(c.Broker.User, c.Broker.Password, "broker.user")},
		{"broker.user", pair(c.Broker.Password, c.Broker.User, "broker.password")},
		{"metrics.listen", hostPort(c.Metrics.Listen)},
		{"broker.cluster.routes", eachOf(c.Broker.Cluster.Routes, checkRoute)},
		{"broker.store_dir", nonEmpty(c.Broker.StoreDir)},
		{"broker.connect_timeout", durIn(c.Broker.ConnectTimeout, time.Nanosecond, day)},
		{"broker.sync_interval", durIn(c.Broker.SyncInterval, 100*time.Millisecond, time.Hour)},
		{"queue.name", task.ValidName(c.Queue.Name)},
		{"queue.messages", in(c.Queue.Messages, 0, 10_000_000)},
		{"queue.pause_min", durIn(c.Queue.PauseMin, 0, time.Hour)},
		{"queue.pause_max", notBelow(c.Queue.PauseMax, c.Queue.PauseMin, "queue.pause_min")},
		{"queue.pause_max", durIn(c.Queue.PauseMax, 0, time.Hour)},
		{"queue.ack_wait", durIn(c.Queue.AckWait, time.Second, time.Hour)},
		{"queue.max_deliver", in(c.Queue.MaxDeliver, 1, 1000)},
		{"queue.max_ack_pending", in(c.Queue.MaxAckPending, 1, 1_000_000)},
		{"queue.max_messages", inRange(c.Queue.MaxMessages, 1, 1_000_000_000)},
		{"queue.put_timeout", durIn(c.Queue.PutTimeout, 100*time.Millisecond, day)},
		{"queue.replicas", in(c.Queue.Replicas, 1, 5)},
		{"queue.replicas", c.replicasFit()},
		{"consumers.count", in(c.Consumers.Count, 1, procs)},
		{"consumers.work_min", durIn(c.Consumers.WorkMin, 0, time.Hour)},
		{"consumers.work_max", notBelow(c.Consumers.WorkMax, c.Consumers.WorkMin, "consumers.work_min")},
		{"consumers.work_max", durIn(c.Consumers.WorkMax, 0, time.Hour)},
		{"consumers.concurrency", in(c.Consumers.Concurrency, 1, procs)},
		{"consumers.concurrency", notAbove(c.Consumers.Concurrency, c.Queue.MaxAckPending, "queue.max_ack_pending")},
		{"consumers.prefetch", in(c.Consumers.Prefetch, 0, 10_000)},
		{"consumers.prefetch", notAbove(c.Consumers.Prefetch, c.Queue.MaxAckPending, "queue.max_ack_pending")},
		{"consumers.max_restarts", in(c.Consumers.MaxRestarts, 0, 1000)},
		{"consumers.max_tasks", in(c.Consumers.MaxTasks, 0, 1_000_000_000)},
		{"consumers.task_timeout", durIn(c.Consumers.TaskTimeout, 0, day)},
		{"consumers.hard_timeout_grace", durIn(c.Consumers.HardTimeoutGrace, time.Millisecond, time.Hour)},
		{"consumers.retry_backoff", durIn(c.Consumers.RetryBackoff, time.Millisecond, 24*time.Hour)},
		{"consumers.retry_backoff_max", durIn(c.Consumers.RetryBackoffMax, time.Millisecond, 24*time.Hour)},
		{"consumers.retry_backoff_max", notBelow(c.Consumers.RetryBackoffMax, c.Consumers.RetryBackoff, "consumers.retry_backoff")},
		{"pool.processes", in(c.Pool.Processes, 0, procs)},
		{"pool.kind", task.ValidName(c.Pool.Kind)},
		{"pool.inputs", parses(c.Pool.Inputs)},
		{"pool.chunk_size", in(c.Pool.ChunkSize, 0, protocol.MaxChunkSize)},
		{"pool.window", in(c.Pool.Window, 1, protocol.MaxWindow)},
		{"pool.sleep", durIn(c.Pool.Sleep, 0, time.Hour)},
		{"pool.results_max_age", durIn(c.Pool.ResultsMaxAge, time.Second, 30*day)},
		{"pool.idle_timeout", durIn(c.Pool.IdleTimeout, time.Second, day)},
		{"compare.n", inRange(c.Compare.N, 1, demo.MaxSumSquaresN)},
		{"compare.tasks", in(c.Compare.Tasks, 1, procs)},
		{"pipe.name", task.ValidName(c.Pipe.Name)},
		{"pipe.peer_timeout", durIn(c.Pipe.PeerTimeout, 100*time.Millisecond, time.Hour)},
		{"log.dir", nonEmpty(c.Log.Dir)},
		{"log.level", oneOf(c.Log.Level, "debug", "info", "warn", "error")},
		{"log.stderr_level", oneOf(c.Log.StderrLevel, "debug", "info", "warn", "error")},
	}
	for _, ch := range checks {
		if ch.err != nil {
			return &Error{Key: ch.key, Err: ch.err}
		}
	}
	if key, err := c.oneCredential(); err != nil {
		return &Error{Key: key, Err: err}
	}
	return nil
}

// readable: a file setting names a file this process can read.
func readable(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
	}
	return f.Close()
}

// pair: a setting that goes with another (a key with its certificate, a
// password with its user) is set when the other is.
func pair(other, this, otherKey string) error {
	if other != "" && this == "" {
		return fmt.Errorf("is empty but %s is set: set both or neither", otherKey)
	}
	return nil
}

// needs: an on switch needs what it works with.
func needs(on, have bool, what string) error {
	if on && !have {
		return fmt.Errorf("is on but needs %s", what)
	}
	return nil
}

// oneCredential: a client presents one kind of credential; two at once
// is ambiguous, so it is refused naming both.
func (c *Config) oneCredential() (key string, err error) {
	var set []string
	for _, k := range []struct {
		key string
		on  bool
	}{
		{"broker.token", c.Broker.Token != ""},
		{"broker.creds", c.Broker.Creds != ""},
		{"broker.nkey", c.Broker.NKey != ""},
		{"broker.user", c.Broker.User != ""},
	} {
		if k.on {
			set = append(set, k.key)
		}
	}
	if len(set) > 1 {
		return set[len(set)-1], fmt.Errorf("%s are both set: set one credential kind", strings.Join(set, " and "))
	}
	return "", nil
}

// parseURL parses a broker URL; an error shows it without user info.
func parseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	var ue *url.Error
	if errors.As(err, &ue) {
		return nil, fmt.Errorf("%s: %w", link.Redact(s), ue.Err)
	}
	return u, err
}

func checkURL(s string) error {
	u, err := parseURL(s)
	if err != nil {
		return err
	}
	s = link.Redact(s)
	if u.Scheme != "nats" && u.Scheme != "tls" {
		return fmt.Errorf("%q: scheme must be nats:// or tls://", s)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%q: no host", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("%q: port must be 0 to 65535", s)
		}
	}
	return nil
}

func each(items []string, check func(string) error) error {
	if len(items) == 0 {
		return fmt.Errorf("must not be empty")
	}
	return eachOf(items, check)
}

func eachOf(items []string, check func(string) error) error {
	for _, it := range items {
		if err := check(it); err != nil {
			return err
		}
	}
	return nil
}

// needsCluster: routes or a route listener without a cluster name would
// be ignored by nats-server; refuse them instead.
func (c *Config) needsCluster(set bool) error {
	if set && c.Broker.Cluster.Name == "" {
		return fmt.Errorf("is set but broker.cluster.name is empty: set the cluster's name on every node")
	}
	return nil
}

// replicasFit: a broker node knows its cluster's size from its routes
// (every node, its own allowed, so at least len(routes)); a client finds
// out from the broker, which refuses a stream it cannot place.
func (c *Config) replicasFit() error {
	cl := c.Broker.Cluster
	switch {
	case c.Queue.Replicas > 1 && cl.Name != "" && len(cl.Routes) > 0 && c.Queue.Replicas > len(cl.Routes)+1:
		return fmt.Errorf("%d is more than the cluster's %d nodes (broker.cluster.routes)", c.Queue.Replicas, len(cl.Routes)+1)
	}
	return nil
}

func serverName(s string) error {
	if strings.ContainsAny(s, " \t\n.*>") {
		return fmt.Errorf("%q: no spaces, dots, * or >", s)
	}
	return nil
}

func hostPort(s string) error {
	if s == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q: want host:port: %w", s, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port must be 0 to 65535", s)
	}
	return nil
}

func checkRoute(s string) error {
	u, err := parseURL(s)
	if err != nil {
		return err
	}
	s = link.Redact(s)
	if u.Scheme != "nats-route" && u.Scheme != "nats" {
		return fmt.Errorf("%q: scheme must be nats-route://", s)
	}
	return hostPort(u.Host)
}

func parses(inputs string) error {
	_, err := ParseInputList(inputs)
	return err
}

func inRange(n, lo, hi int64) error {
	if n < lo || n > hi {
		return fmt.Errorf("must be in [%d, %d], got %d", lo, hi, n)
	}
	return nil
}

func in(n, lo, hi int) error { return inRange(int64(n), int64(lo), int64(hi)) }

func durIn(d, lo, hi time.Duration) error {
	if d < lo || d > hi {
		return fmt.Errorf("must be in [%v, %v], got %v", lo, hi, d)
	}
	return nil
}

func notAbove(n, hi int, hiKey string) error {
	if n > hi {
		return fmt.Errorf("must not be above %s (%d), got %d: a consumer could hold more tasks than the queue lets out", hiKey, hi, n)
	}
	return nil
}

func nonEmpty(s string) error {
	if s == "" {
		return fmt.Errorf("must not be empty")
	}
	return nil
}

func notBelow(d, lo time.Duration, loKey string) error {
	if d < lo {
		return fmt.Errorf("must not be below %s (%v), got %v", loKey, lo, d)
	}
	return nil
}

func oneOf(s string, allowed ...string) error {
	for _, a := range allowed {
		if s == a {
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %v", s, allowed)
}
