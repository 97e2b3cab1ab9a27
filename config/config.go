// Package config loads procq's configuration: config.yaml, overridden by
// PROCQ_<SECTION>_<KEY> environment variables, overridden by flags. It is the
// only package that imports viper.
package config

import (
	"path/filepath"
	"strings"
	"time"

	"github.com/procq/procq/link"
	"github.com/procq/procq/protocol"
)

// Config is the whole configuration of a procq process. The yaml keys are the
// mapstructure tags; config.yaml documents each one.
type Config struct {
	Broker    Broker    `mapstructure:"broker"`
	Queue     Queue     `mapstructure:"queue"`
	Consumers Consumers `mapstructure:"consumers"`
	Pool      Pool      `mapstructure:"pool"`
	Compare   Compare   `mapstructure:"compare"`
	Pipe      Pipe      `mapstructure:"pipe"`
	Log       Log       `mapstructure:"log"`
	Metrics   Metrics   `mapstructure:"metrics"`

	// File is the config file the values were read from; empty when none was.
	File string `mapstructure:"-"`

	values map[string]any // effective value of every key, for Environ
	src    sources        // where each value came from, for ErrorFor
}

// Broker says where the NATS server is and how to reach it.
type Broker struct {
	// URL is where clients connect: one URL, or several (a YAML list or a
	// comma-separated string, kept here comma-joined) so that clients fail
	// over to a live node of a cluster. The broker, and the producer's
	// embedded fallback, listen on the first. Port 0 lets the embedded
	// server pick a free port. Defaults to nats://127.0.0.1:4222.
	URL string `mapstructure:"url"`
	// Name is the server name, unique in a cluster. Empty derives one from
	// the host name and the client port.
	Name string `mapstructure:"name"`
	// Cluster makes the broker a node of a NATS cluster.
	Cluster Cluster `mapstructure:"cluster"`
	// Embedded lets the producer host the broker in-process when no broker
	// answers at URL. Defaults to true.
	Embedded bool `mapstructure:"embedded"`
	// StoreDir is the JetStream file store of the embedded broker; it also
	// holds the broker's lock and token files. Defaults to data/jetstream.
	StoreDir string `mapstructure:"store_dir"`
	// Token authenticates clients. Empty means: the broker generates one into
	// TokenFile, and clients read it from there. Defaults to "".
	Token string `mapstructure:"token"`
	// TokenFile is where the broker writes its token and clients read it.
	// Defaults to <store_dir>/token.
	TokenFile string `mapstructure:"token_file"`
	// ConnectTimeout bounds how long a client waits for the broker to come
	// up. Defaults to 30s.
	ConnectTimeout time.Duration `mapstructure:"connect_timeout"`
	// SyncAlways makes the broker fsync its store before every ack.
	// Defaults to true on a node of a cluster (Cluster.Name set), false
	// otherwise.
	SyncAlways bool `mapstructure:"sync_always"`
	// SyncInterval is how often the broker fsyncs its store when
	// SyncAlways is off. Defaults to 2m.
	SyncInterval time.Duration `mapstructure:"sync_interval"`
	// Metrics is where the broker (standalone or embedded) serves its
	// Prometheus metrics, /metrics: each queue's and stream's state from
	// JetStream. host:port; a host left out binds 127.0.0.1; empty is off.
	Metrics string `mapstructure:"metrics"`
	// Monitor is where the broker serves nats-server's monitoring
	// endpoints (/varz, /jsz, /connz, /healthz, ...). Same form; empty is
	// off.
	Monitor string `mapstructure:"monitor"`
	// UI is where the broker serves the web dashboard. Same form; empty is
	// off.
	UI string `mapstructure:"ui"`
	// TLS, with Cert and Key set, makes the broker's client port require
	// TLS, its cluster routes use TLS, and its HTTP endpoints serve HTTPS;
	// clients trust CA and, with VerifyClients, present Cert and Key.
	TLS TLS `mapstructure:"tls"`
	// Creds is a NATS user credentials file (a JWT and its NKEY seed), as
	// an operator-mode NATS server issues. Empty: not used.
	Creds string `mapstructure:"creds"`
	// NKey is a file holding an NKEY user seed. Empty: not used.
	NKey string `mapstructure:"nkey"`
	// User and Password are a NATS user's name and password. Empty: not
	// used.
	User     string `mapstructure:"user"`
	Password string `mapstructure:"password"`
	// StoreKey, when set, encrypts the embedded broker's store at rest; a
	// store written with another key fails to start. Empty: not
	// encrypted.
	StoreKey string `mapstructure:"store_key"`
	// RoleCredentials makes procq's own broker issue a credential per
	// role (producer, consumer) for queue.name, each allowed only its
	// role's work; procq's processes present their role's, and the token
	// stays the admin's. Defaults to true.
	RoleCredentials bool `mapstructure:"role_credentials"`
	// CredentialsDir is where the broker writes the role credentials (one
	// 0600 file per role) and processes read theirs. Defaults to
	// <store_dir>/creds.
	CredentialsDir string `mapstructure:"credentials_dir"`
}

// CredentialsPath is the credentials dir: credentials_dir, or
// <store_dir>/creds.
func (b Broker) CredentialsPath() string {
	if b.CredentialsDir != "" {
		return b.CredentialsDir
	}
	return filepath.Join(b.StoreDir, "creds")
}

// TLS names the files of the broker's and the clients' TLS.
type TLS struct {
	// Cert and Key are a PEM certificate and its private key: the server's
	// on the broker, the client's on a client when the broker verifies
	// clients.
	Cert string `mapstructure:"cert"`
	Key  string `mapstructure:"key"`
	// CA is the PEM certificate of the authority that signed the broker's
	// (and the clients') certificates. Empty: the system's roots.
	CA string `mapstructure:"ca"`
	// VerifyClients makes the broker require a client certificate signed
	// by CA (mutual TLS), and clients present theirs.
	VerifyClients bool `mapstructure:"verify_clients"`
}

// On says whether TLS is configured: a certificate, a CA or mutual TLS.
func (t TLS) On() bool { return t.Cert != "" || t.Key != "" || t.CA != "" || t.VerifyClients }

// RouteTLS names the files of the cluster routes' TLS; empty ones are
// broker.tls's.
type RouteTLS struct {
	Cert string `mapstructure:"cert"`
	Key  string `mapstructure:"key"`
	CA   string `mapstructure:"ca"`
}

// Metrics configures the consumers' Prometheus endpoints.
type Metrics struct {
	// Listen is where a consumer process serves /metrics: host:port, a
	// host left out binds 127.0.0.1, port 0 picks a free one (logged);
	// the producer gives the consumers it spawns consecutive ports from
	// this one. Empty (the default) is off.
	Listen string `mapstructure:"listen"`
}

// Cluster configures the broker's place in a NATS cluster (JetStream with
// Raft-replicated streams).
type Cluster struct {
	// Name of the cluster, the same on every node. Empty: no cluster.
	Name string `mapstructure:"name"`
	// Listen is the host:port of the route listener. A host left out binds
	// 127.0.0.1. Defaults to 127.0.0.1:6222 when Name is set.
	Listen string `mapstructure:"listen"`
	// Routes are the nats-route://host:port URLs of every node, this one's
	// own allowed (a YAML list or a comma-separated string).
	Routes []string `mapstructure:"routes"`
	// Secret authenticates routes between nodes. Empty derives it from the
	// shared client token; routes are never anonymous.
	Secret string `mapstructure:"secret"`
	// TLS overrides broker.tls's files for the routes.
	TLS RouteTLS `mapstructure:"tls"`
}

// Queue configures the work queue and the Queue demo.
type Queue struct {
	// Name of the queue; one subject token. Defaults to demo.
	Name string `mapstructure:"name"`
	// Messages the Queue demo puts. Defaults to 10.
	Messages int `mapstructure:"messages"`
	// PauseMin and PauseMax bound the random pause between puts. Default to
	// 100ms and 500ms.
	PauseMin time.Duration `mapstructure:"pause_min"`
	PauseMax time.Duration `mapstructure:"pause_max"`
	// AckWait is the task lease: a task not acked in time is redelivered.
	// Consumers keep the lease of every task they hold with heartbeats, so
	// it can be short: it is how long a dead consumer's tasks wait before
	// they run again. 1s to 1h. Defaults to 4s.
	AckWait time.Duration `mapstructure:"ack_wait"`
	// MaxDeliver is how many times a task is delivered before it is
	// dead-lettered. Defaults to 5.
	MaxDeliver int `mapstructure:"max_deliver"`
	// MaxAckPending caps the tasks in flight across all consumers. Defaults
	// to 1000.
	MaxAckPending int `mapstructure:"max_ack_pending"`
	// MaxMessages caps the messages the task stream holds; a full stream
	// makes puts wait for room. 1 to 1e9. Defaults to 1000000.
	MaxMessages int64 `mapstructure:"max_messages"`
	// PutTimeout is how long putting a task or a sentinel waits for room in
	// a full queue before it fails. 100ms to 24h. Defaults to 30s.
	PutTimeout time.Duration `mapstructure:"put_timeout"`
	// Replicas is the replica count of every procq stream and key-value
	// bucket; at most the cluster's size. 1 to 5. Defaults to 1.
	Replicas int `mapstructure:"replicas"`
}

// Consumers configures the consumer processes.
type Consumers struct {
	// Count is how many consumers run, how many sentinels end a run, and how
	// many processes the producer spawns. Defaults to 2.
	Count int `mapstructure:"count"`
	// Spawn lets the producer start and join the consumer processes.
	// Defaults to true.
	Spawn bool `mapstructure:"spawn"`
	// Path is the consumer executable to spawn. Defaults to the consumer
	// beside the producer executable.
	Path string `mapstructure:"path"`
	// WorkMin and WorkMax bound the random work time of a Queue demo message.
	// Default to 200ms and 800ms.
	WorkMin time.Duration `mapstructure:"work_min"`
	WorkMax time.Duration `mapstructure:"work_max"`
	// Concurrency is how many tasks one consumer process runs at once.
	// Defaults to 1.
	Concurrency int `mapstructure:"concurrency"`
	// Prefetch pins how many tasks a consumer holds at once; 0 (the
	// default) is adaptive: about 15ms of work ahead per slot, measured
	// from recent task durations, between concurrency (long tasks spread
	// over consumers) and 256 (tiny tasks cost one pull per hundreds).
	Prefetch int `mapstructure:"prefetch"`
	// MaxRestarts is how many times the producer replaces a spawned consumer
	// that died before taking its sentinel. Defaults to 3; 0 disables.
	MaxRestarts int `mapstructure:"max_restarts"`
	// MaxTasks retires a consumer process after that many task messages,
	// like Python's maxtasksperchild: it finishes them, exits with code 3,
	// and the producer that spawned it starts a fresh one. 0 (the default)
	// is unlimited.
	MaxTasks int `mapstructure:"max_tasks"`
	// TaskTimeout is the time limit of a task that names none of its own
	// (procq.Timeout): its handler's context is cancelled then, and a
	// handler still running HardTimeoutGrace later is abandoned: the task
	// is dead-lettered "time limit exceeded after ...", and the consumer
	// exits with code 4 so that the producer that spawned it starts a
	// fresh one. 0 (the default) is none; at most 24h.
	TaskTimeout time.Duration `mapstructure:"task_timeout"`
	// HardTimeoutGrace is how long a handler may run on past its time
	// limit. 1ms to 1h. Defaults to 5s.
	HardTimeoutGrace time.Duration `mapstructure:"hard_timeout_grace"`
	// RetryBackoff is the first delay before a task whose handler asked
	// for another try (task.Retry) runs again; it doubles per delivery up
	// to RetryBackoffMax, with jitter, within queue.max_deliver deliveries.
	// Default to 1s and 1m.
	RetryBackoff    time.Duration `mapstructure:"retry_backoff"`
	RetryBackoffMax time.Duration `mapstructure:"retry_backoff_max"`
}

// Pool configures "producer pool".
type Pool struct {
	// Processes is the pool size: consumer processes to spawn. 0 means the
	// logical CPU count. Defaults to 0.
	Processes int `mapstructure:"processes"`
	// Kind is the task kind to map. Defaults to sumsquares.
	Kind string `mapstructure:"kind"`
	// Inputs is a range a..b, a JSON array, JSON lines, or comma-separated
	// JSON values (a bare word is a string).
	// Defaults to the seed's 50000000,50000001,50000002,50000003,49999999.
	Inputs string `mapstructure:"inputs"`
	// ChunkSize is how many inputs travel in one message; 0 picks one like
	// Python's Pool.map does. Defaults to 0.
	ChunkSize int `mapstructure:"chunk_size"`
	// Window caps the task messages in flight. Defaults to 1024.
	Window int `mapstructure:"window"`
	// Sleep is the square kind's sleep per input. Defaults to 100ms.
	Sleep time.Duration `mapstructure:"sleep"`
	// ResultsMaxAge is how long an unread result is kept. Defaults to 1h.
	ResultsMaxAge time.Duration `mapstructure:"results_max_age"`
	// IdleTimeout is how long a map waits with no live consumer on its
	// queue (consumers started by hand) before it fails. 1s to 24h.
	// Defaults to 30s.
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
}

// Compare configures "producer compare".
type Compare struct {
	// N is the sumsquares input of each task; big enough that the
	// synchronous part takes seconds. Defaults to 3000000000.
	N int64 `mapstructure:"n"`
	// Tasks is how many tasks run one after another, then in as many
	// consumer processes at once. Defaults to 2.
	Tasks int `mapstructure:"tasks"`
}

// Pipe configures the Pipe demo.
type Pipe struct {
	// Name of the pipe; one subject token. Defaults to demo.
	Name string `mapstructure:"name"`
	// PeerTimeout is how long an end waits without a sign of life from its
	// peer before Recv fails with the peer-gone error. It is also the lease
	// of an end's claim. Defaults to 10s.
	PeerTimeout time.Duration `mapstructure:"peer_timeout"`
}

// Log configures the per-process log files.
type Log struct {
	// Dir holds one log file per process. Defaults to logs.
	Dir string `mapstructure:"dir"`
	// Level is debug, info, warn or error. Defaults to info.
	Level string `mapstructure:"level"`
	// StderrLevel is the level from which lines also go to stderr, so the
	// demo output on stdout stays readable. Defaults to warn.
	StderrLevel string `mapstructure:"stderr_level"`
}

// defaults lists every key with its default value. A key absent here is an
// unknown key.
var defaults = map[string]any{
	"broker.url":                link.DefaultURL,
	"broker.name":               "",
	"broker.cluster.name":       "",
	"broker.cluster.listen":     "",
	"broker.cluster.routes":     []string{},
	"broker.cluster.secret":     "",
	"broker.embedded":           true,
	"broker.store_dir":          "data/jetstream",
	"broker.token":              "",
	"broker.token_file":         "",
	"broker.connect_timeout":    dur(link.DefaultConnectTimeout),
	"broker.sync_always":        false,
	"broker.sync_interval":      dur(2 * time.Minute),
	"broker.metrics":            "",
	"broker.monitor":            "",
	"broker.ui":                 "",
	"broker.tls.cert":           "",
	"broker.tls.key":            "",
	"broker.tls.ca":             "",
	"broker.tls.verify_clients": false,
	"broker.cluster.tls.cert":   "",
	"broker.cluster.tls.key":    "",
	"broker.cluster.tls.ca":     "",
	"broker.creds":              "",
	"broker.nkey":               "",
	"broker.user":               "",
	"broker.password":           "",
	"broker.store_key":          "",
	"broker.role_credentials":   true,
	"broker.credentials_dir":    "",

	"queue.name":            "demo",
	"queue.messages":        10,
	"queue.pause_min":       "100ms",
	"queue.pause_max":       "500ms",
	"queue.ack_wait":        dur(protocol.DefaultAckWait),
	"queue.max_deliver":     protocol.DefaultMaxDeliver,
	"queue.max_ack_pending": protocol.DefaultMaxAckPending,
	"queue.max_messages":    protocol.DefaultMaxMessages,
	"queue.put_timeout":     dur(protocol.DefaultPutTimeout),
	"queue.replicas":        protocol.DefaultReplicas,

	"consumers.count":              2,
	"consumers.spawn":              true,
	"consumers.path":               "",
	"consumers.work_min":           "200ms",
	"consumers.work_max":           "800ms",
	"consumers.concurrency":        1,
	"consumers.prefetch":           0,
	"consumers.max_restarts":       3,
	"consumers.max_tasks":          0,
	"consumers.task_timeout":       "0s",
	"consumers.hard_timeout_grace": "5s",
	"consumers.retry_backoff":      dur(protocol.DefaultRetryBackoff),
	"consumers.retry_backoff_max":  dur(protocol.DefaultRetryBackoffMax),

	"pool.processes":       0,
	"pool.kind":            "sumsquares",
	"pool.inputs":          "50000000,50000001,50000002,50000003,49999999",
	"pool.chunk_size":      0,
	"pool.window":          protocol.DefaultWindow,
	"pool.sleep":           "100ms",
	"pool.results_max_age": dur(protocol.DefaultResultsMaxAge),
	"pool.idle_timeout":    dur(protocol.DefaultIdleTimeout),

	"compare.n":     3000000000,
	"compare.tasks": 2,

	"pipe.name":         "demo",
	"pipe.peer_timeout": dur(protocol.DefaultPeerTimeout),

	"log.dir":          "logs",
	"log.level":        "info",
	"log.stderr_level": "warn",

	"metrics.listen": "",
}

// Keys returns every configuration key, for documentation and flag binding.
func Keys() []string {
	keys := make([]string, 0, len(defaults))
	for k := range defaults {
		keys = append(keys, k)
	}
	return keys
}

// TokenPath is the token file: TokenFile, or <store_dir>/token.
func (b Broker) TokenPath() string {
	if b.TokenFile != "" {
		return b.TokenFile
	}
	return filepath.Join(b.StoreDir, "token")
}

// URLs are the broker URLs, in order.
func (b Broker) URLs() []string { return strings.Split(b.URL, ",") }

// Client is how a process named name, of role on queue, reaches the
// configured broker: with the credential configured, or else its role's
// (when the broker issues role credentials for that queue), or else the
// token.
func (b Broker) Client(role, queue, name string) link.Config {
	c := link.Config{
		URL:       b.URL,
		Token:     b.Token,
		TokenFile: b.TokenPath(),
		Timeout:   b.ConnectTimeout,
		Name:      name,
		Creds:     b.Creds,
		NKey:      b.NKey,
		User:      b.User,
		Password:  b.Password,
	}
	if b.RoleCredentials && role != protocol.RoleAdmin {
		c.RoleFile, c.RoleUser = filepath.Join(b.CredentialsPath(), role), protocol.RoleUser(role, queue)
	}
	if b.TLS.On() {
		c.TLS = &link.TLSFiles{CA: b.TLS.CA}
		if b.TLS.VerifyClients {
			c.TLS.Cert, c.TLS.Key = b.TLS.Cert, b.TLS.Key
		}
	}
	if c.Creds != "" || c.NKey != "" || c.User != "" {
		c.Token, c.TokenFile = "", "" // one credential: the one set
	}
	return c
}

// dur writes a default duration as config.yaml does: "1m", not "1m0s".
func dur(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "m0s")
	if len(s) < len(d.String()) {
		s += "m"
	}
	if t := strings.TrimSuffix(s, "h0m"); t != s {
		s = t + "h"
	}
	return s
}

// QueueShape is the configured queue's shape (its streams' limits, lease
// and replicas).
func (c *Config) QueueShape() protocol.QueueConfig {
	return protocol.QueueConfig{
		Name:          c.Queue.Name,
		AckWait:       c.Queue.AckWait,
		MaxAckPending: c.Queue.MaxAckPending,
		MaxMessages:   c.Queue.MaxMessages,
		Replicas:      c.Queue.Replicas,
		ResultsMaxAge: c.Pool.ResultsMaxAge,
	}
}
