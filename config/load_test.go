package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadDefaultsWithoutFile(t *testing.T) {
	t.Chdir(t.TempDir())
	c, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.File != "" {
		t.Errorf("File = %q, want empty without config.yaml", c.File)
	}
	if c.Broker.URL != "nats://127.0.0.1:4222" || c.Consumers.Count != 2 || !c.Consumers.Spawn ||
		c.Broker.StoreDir != "data/jetstream" || c.Log.Dir != "logs" || c.Queue.AckWait != 4*time.Second {
		t.Errorf("defaults: got %+v", c)
	}
	if got, want := c.Broker.TokenPath(), filepath.Join("data/jetstream", "token"); got != want {
		t.Errorf("TokenPath() = %q, want %q", got, want)
	}
}

// The shipped config.yaml must load and say what the defaults say.
func TestShippedConfigMatchesDefaults(t *testing.T) {
	c, err := Load(Options{Path: "../config.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	d, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range c.Environ() {
		found := false
		for _, dv := range d.Environ() {
			found = found || dv == kv
		}
		if !found {
			t.Errorf("config.yaml sets %s, which is not the default", kv)
		}
	}
	for _, k := range Keys() {
		leaf := k[strings.LastIndex(k, ".")+1:]
		// A key whose default derives from others is shown commented out:
		// setting it would override the derivation.
		if !strings.Contains(string(b), "  "+leaf+":") && !strings.Contains(string(b), "  # "+leaf+":") {
			t.Errorf("config.yaml does not document %s", k)
		}
	}
}

func TestPrecedenceFileEnvFlag(t *testing.T) {
	path := writeFile(t, "consumers:\n  count: 3\n  concurrency: 2\nqueue:\n  name: jobs\n")
	t.Setenv("PROCQ_CONSUMERS_COUNT", "4")
	t.Setenv("PROCQ_QUEUE_NAME", "envjobs")
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.Int("consumers", 0, "")
	fs.String("queue", "", "")
	if err := fs.Parse([]string{"--queue", "flagjobs"}); err != nil {
		t.Fatal(err)
	}
	c, err := Load(Options{Path: path, Flags: map[*pflag.Flag]string{
		fs.Lookup("consumers"): "consumers.count",
		fs.Lookup("queue"):     "queue.name",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Consumers.Concurrency != 2 {
		t.Errorf("file value: concurrency = %d, want 2", c.Consumers.Concurrency)
	}
	if c.Consumers.Count != 4 {
		t.Errorf("env over file: count = %d, want 4 (an unset flag does not override)", c.Consumers.Count)
	}
	if c.Queue.Name != "flagjobs" {
		t.Errorf("flag over env: queue = %q, want flagjobs", c.Queue.Name)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name       string
		yaml       string
		env        [2]string
		wantKey    string
		wantSource string // "file" for the config file
		wantMsg    string
	}{
		{name: "unknown section", yaml: "consumer:\n  count: 2\n", wantKey: "consumer.count", wantSource: "file", wantMsg: "unknown key"},
		{name: "unknown key", yaml: "broker:\n  urll: x\n", wantKey: "broker.urll", wantSource: "file", wantMsg: "unknown key"},
		{name: "wrong type", yaml: "consumers:\n  count: two\n", wantKey: "consumers.count", wantSource: "file", wantMsg: "int"},
		{name: "zero count", yaml: "consumers:\n  count: 0\n", wantKey: "consumers.count", wantSource: "file", wantMsg: "must be in [1, 1024], got 0"},
		{name: "negative count", yaml: "consumers:\n  count: -3\n", wantKey: "consumers.count", wantSource: "file", wantMsg: "got -3"},
		{name: "bad duration", yaml: "queue:\n  ack_wait: 5 parsecs\n", wantKey: "queue.ack_wait", wantSource: "file", wantMsg: "time: unknown unit"},
		{name: "negative duration", yaml: "queue:\n  pause_min: -1s\n", wantKey: "queue.pause_min", wantSource: "file", wantMsg: "must be in [0s, 1h0m0s], got -1s"},
		{name: "max below min", yaml: "consumers:\n  work_min: 2s\n  work_max: 1s\n", wantKey: "consumers.work_max", wantSource: "file", wantMsg: "consumers.work_min"},
		{name: "unparsable url", yaml: "broker:\n  url: \"nats://[::1\"\n", wantKey: "broker.url", wantSource: "file", wantMsg: "missing ']'"},
		{name: "url scheme", yaml: "broker:\n  url: http://127.0.0.1:4222\n", wantKey: "broker.url", wantSource: "file", wantMsg: "scheme"},
		{name: "url port", yaml: "broker:\n  url: nats://127.0.0.1:99999\n", wantKey: "broker.url", wantSource: "file", wantMsg: "port"},
		{name: "queue name", yaml: "queue:\n  name: a.b\n", wantKey: "queue.name", wantSource: "file", wantMsg: "not a valid name"},
		{name: "log level", yaml: "log:\n  level: loud\n", wantKey: "log.level", wantSource: "file", wantMsg: "not one of"},
		{name: "missing key file", yaml: "broker:\n  tls:\n    cert: load_test.go\n    key: /nonexistent/key.pem\n", wantKey: "broker.tls.key", wantSource: "file", wantMsg: "cannot read /nonexistent/key.pem"},
		{name: "cert without key", yaml: "broker:\n  tls:\n    cert: load_test.go\n", wantKey: "broker.tls.key", wantSource: "file", wantMsg: "is empty but broker.tls.cert is set"},
		{name: "verify clients without files", yaml: "broker:\n  tls:\n    verify_clients: true\n", wantKey: "broker.tls.verify_clients", wantSource: "file", wantMsg: "needs broker.tls.cert"},
		{name: "password without user", yaml: "broker:\n  password: s3cret\n", wantKey: "broker.user", wantSource: "file", wantMsg: "is empty but broker.password is set"},
		{name: "two credential kinds", yaml: "broker:\n  token: t\n  user: u\n  password: p\n", wantKey: "broker.user", wantSource: "file", wantMsg: "broker.token and broker.user are both set"},
		{name: "unreadable creds", yaml: "broker:\n  creds: /nonexistent/user.creds\n", wantKey: "broker.creds", wantSource: "file", wantMsg: "cannot read /nonexistent/user.creds"},
		{name: "env value", yaml: "", env: [2]string{"PROCQ_CONSUMERS_COUNT", "0"}, wantKey: "consumers.count", wantSource: "environment PROCQ_CONSUMERS_COUNT", wantMsg: "must be in [1, 1024]"},
		{name: "env type", yaml: "", env: [2]string{"PROCQ_CONSUMERS_SPAWN", "perhaps"}, wantKey: "consumers.spawn", wantSource: "environment PROCQ_CONSUMERS_SPAWN", wantMsg: "bool"},
		{name: "env misspelled", yaml: "", env: [2]string{"PROCQ_CONSUMERS_COUNTT", "3"}, wantKey: "", wantSource: "environment PROCQ_CONSUMERS_COUNTT", wantMsg: "names no configuration key"},
		// Huge values are refused with the key named, never a panic or an
		// out-of-memory: each was a crash before the bounds.
		{name: "huge window", yaml: "pool:\n  window: 1e14\n", wantKey: "pool.window", wantSource: "file", wantMsg: "must be in [1, 100000], got 100000000000000"},
		{name: "huge chunk", yaml: "pool:\n  chunk_size: 100000000000000000\n", wantKey: "pool.chunk_size", wantSource: "file", wantMsg: "must be in [0, 100000]"},
		{name: "huge concurrency", yaml: "consumers:\n  concurrency: 100000000\n", wantKey: "consumers.concurrency", wantSource: "file", wantMsg: "must be in [1, 1024]"},
		{name: "huge range", yaml: "", env: [2]string{"PROCQ_POOL_INPUTS", "-9000000000000000000..9000000000000000000"}, wantKey: "pool.inputs", wantSource: "environment PROCQ_POOL_INPUTS", wantMsg: "more than 10000000 inputs"},
		{name: "whole int64 range", yaml: "pool:\n  inputs: -9223372036854775808..9223372036854775807\n", wantKey: "pool.inputs", wantSource: "file", wantMsg: "more than 10000000 inputs"},
		{name: "prefetch over max_ack_pending", yaml: "consumers:\n  prefetch: 600\nqueue:\n  max_ack_pending: 500\n", wantKey: "consumers.prefetch", wantSource: "file", wantMsg: "queue.max_ack_pending"},
		{name: "huge processes", yaml: "pool:\n  processes: 5000\n", wantKey: "pool.processes", wantSource: "file", wantMsg: "must be in [0, 1024]"},
		{name: "huge max_messages", yaml: "queue:\n  max_messages: 1e12\n", wantKey: "queue.max_messages", wantSource: "file", wantMsg: "must be in [1, 1000000000]"},
		{name: "long ack_wait", yaml: "queue:\n  ack_wait: 2h\n", wantKey: "queue.ack_wait", wantSource: "file", wantMsg: "must be in [1s, 1h0m0s]"},
		{name: "short put_timeout", yaml: "queue:\n  put_timeout: 1ms\n", wantKey: "queue.put_timeout", wantSource: "file", wantMsg: "must be in [100ms, 24h0m0s]"},
		{name: "routes without cluster name", yaml: "broker:\n  cluster:\n    routes: [nats-route://127.0.0.1:6222]\n", wantKey: "broker.cluster.routes", wantSource: "file", wantMsg: "broker.cluster.name is empty"},
		{name: "route scheme", yaml: "broker:\n  cluster:\n    name: c\n    routes: [http://127.0.0.1:6222]\n", wantKey: "broker.cluster.routes", wantSource: "file", wantMsg: "nats-route://"},
		{name: "listen without cluster name", yaml: "broker:\n  cluster:\n    listen: 127.0.0.1:6222\n", wantKey: "broker.cluster.listen", wantSource: "file", wantMsg: "broker.cluster.name is empty"},
		{name: "route listen", yaml: "broker:\n  cluster:\n    name: c\n    listen: 6222\n", wantKey: "broker.cluster.listen", wantSource: "file", wantMsg: "want host:port"},
		{name: "second url bad", yaml: "broker:\n  url: [nats://127.0.0.1:4222, http://x:1]\n", wantKey: "broker.url", wantSource: "file", wantMsg: "scheme"},
		{name: "replicas over five", yaml: "queue:\n  replicas: 7\n", wantKey: "queue.replicas", wantSource: "file", wantMsg: "must be in [1, 5], got 7"},
		{name: "replicas over cluster", yaml: "broker:\n  cluster:\n    name: c\n    routes: [nats-route://127.0.0.1:6222]\nqueue:\n  replicas: 3\n", wantKey: "queue.replicas", wantSource: "file", wantMsg: "more than the cluster's 2 nodes"},
		{name: "env replicas", yaml: "", env: [2]string{"PROCQ_QUEUE_REPLICAS", "0"}, wantKey: "queue.replicas", wantSource: "environment PROCQ_QUEUE_REPLICAS", wantMsg: "must be in [1, 5], got 0"},
		{name: "short sync_interval", yaml: "broker:\n  sync_interval: 10ms\n", wantKey: "broker.sync_interval", wantSource: "file", wantMsg: "must be in [100ms, 1h0m0s], got 10ms"},
		{name: "env sync_interval", yaml: "", env: [2]string{"PROCQ_BROKER_SYNC_INTERVAL", "2h"}, wantKey: "broker.sync_interval", wantSource: "environment PROCQ_BROKER_SYNC_INTERVAL", wantMsg: "must be in [100ms, 1h0m0s], got 2h0m0s"},
		{name: "short idle_timeout", yaml: "pool:\n  idle_timeout: 10ms\n", wantKey: "pool.idle_timeout", wantSource: "file", wantMsg: "must be in [1s, 24h0m0s]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.yaml)
			if tt.env[0] != "" {
				t.Setenv(tt.env[0], tt.env[1])
			}
			_, err := Load(Options{Path: path})
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Load error %v (%T), want *Error", err, err)
			}
			if ce.Key != tt.wantKey {
				t.Errorf("Key = %q, want %q", ce.Key, tt.wantKey)
			}
			wantSource := tt.wantSource
			if wantSource == "file" {
				wantSource = path
			}
			if ce.Source != wantSource {
				t.Errorf("Source = %q, want %q", ce.Source, wantSource)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) || !strings.Contains(err.Error(), tt.wantKey) || !strings.Contains(err.Error(), ce.Source) {
				t.Errorf("error %q does not contain %q and %q", err, tt.wantMsg, tt.wantKey)
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load(Options{Path: filepath.Join(t.TempDir(), "missing.yaml")})
	var ce *Error
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("explicit missing file: err %v, want a *Error naming the file", err)
	}
}

func TestMalformedYAML(t *testing.T) {
	path := writeFile(t, "consumers:\n  count: [1\n")
	_, err := Load(Options{Path: path})
	var ce *Error
	if !errors.As(err, &ce) || ce.Source != path {
		t.Fatalf("malformed yaml: err %v, want a *Error for %s", err, path)
	}
}

// loadFromEnviron loads, in an empty directory, the configuration c hands
// to a spawned child through its environment.
func loadFromEnviron(t *testing.T, c *Config) *Config {
	t.Helper()
	t.Chdir(t.TempDir())
	for _, kv := range c.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	d, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestEnvironRoundTrip(t *testing.T) {
	path := writeFile(t, "consumers:\n  count: 5\nqueue:\n  ack_wait: 7s\n")
	c, err := Load(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	d := loadFromEnviron(t, c)
	if d.Consumers.Count != 5 || d.Queue.AckWait != 7*time.Second {
		t.Errorf("child config from Environ: count %d ack_wait %v, want 5 and 7s", d.Consumers.Count, d.Queue.AckWait)
	}
}

// Config loading never panics, whatever the file says, and every failure
// is a *Error.
func FuzzLoad(f *testing.F) {
	f.Add("consumers:\n  count: 2\n")
	f.Add("pool:\n  window: 1e14\n")
	f.Add("pool:\n  chunk_size: 1e17\n")
	f.Add("pool:\n  inputs: -9223372036854775808..9223372036854775807\n")
	f.Add("queue:\n  ack_wait: 1e30s\n")
	f.Add("consumers:\n  concurrency: 100000000\n")
	f.Add("broker: [1, 2]\n")
	f.Add("compare:\n  n: 1e400\n")
	f.Add(": : :\n")
	f.Fuzz(func(t *testing.T, yaml string) {
		path := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(Options{Path: path})
		var ce *Error
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("Load error %v (%T), want *Error", err, err)
		}
	})
}

// broker.url and broker.cluster.routes take a YAML list or a
// comma-separated string (the environment's form), and a spawned child
// gets the same lists back through Environ.
func TestClusterLists(t *testing.T) {
	path := writeFile(t, `broker:
  url: [nats://127.0.0.1:4222, " nats://127.0.0.1:4223"]
  name: n1
  cluster:
    name: procq
    listen: 127.0.0.1:6222
    routes:
      - nats-route://127.0.0.1:6222
      - nats-route://127.0.0.1:6223
queue:
  replicas: 2
`)
	c, err := Load(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	wantURL := "nats://127.0.0.1:4222,nats://127.0.0.1:4223"
	wantRoutes := []string{"nats-route://127.0.0.1:6222", "nats-route://127.0.0.1:6223"}
	check := func(from string, c *Config) {
		t.Helper()
		if c.Broker.URL != wantURL || !slices.Equal(c.Broker.URLs(), strings.Split(wantURL, ",")) ||
			!slices.Equal(c.Broker.Cluster.Routes, wantRoutes) || c.Broker.Cluster.Name != "procq" ||
			c.Broker.Name != "n1" || c.Queue.Replicas != 2 {
			t.Errorf("%s: url %q routes %q cluster %q name %q replicas %d", from, c.Broker.URL,
				c.Broker.Cluster.Routes, c.Broker.Cluster.Name, c.Broker.Name, c.Queue.Replicas)
		}
	}
	check("file", c)
	d := loadFromEnviron(t, c)
	check("environment", d)
	t.Setenv("PROCQ_BROKER_URL", "nats://127.0.0.1:4222, nats://127.0.0.1:4223")
	t.Setenv("PROCQ_BROKER_CLUSTER_ROUTES", "nats-route://127.0.0.1:6222 ,nats-route://127.0.0.1:6223")
	if d, err = Load(Options{}); err != nil {
		t.Fatal(err)
	}
	check("comma-separated environment", d)
}

// The shipped deployment configs load and validate: the real-host nodes
// of a 3-node cluster and their clients.
func TestDeployConfigsLoad(t *testing.T) {
	files, err := filepath.Glob("../deploy/hosts/*.yaml")
	if err != nil || len(files) != 4 {
		t.Fatalf("deploy/hosts: %v, %v; want node1..3 and client", files, err)
	}
	for _, f := range files {
		c, err := Load(Options{Path: f})
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if c.Queue.Replicas != 3 {
			t.Errorf("%s: queue.replicas %d, want 3", f, c.Queue.Replicas)
		}
		if strings.Contains(f, "node") && (c.Broker.Cluster.Name != "procq" || len(c.Broker.Cluster.Routes) != 3) {
			t.Errorf("%s: cluster %q routes %v", f, c.Broker.Cluster.Name, c.Broker.Cluster.Routes)
		}
		if strings.Contains(f, "client") && (len(c.Broker.URLs()) != 3 || c.Broker.Embedded) {
			t.Errorf("%s: urls %v embedded %v", f, c.Broker.URLs(), c.Broker.Embedded)
		}
	}
}

// broker.sync_always defaults to true on a node of a cluster, where the
// streams are replicated, and to false on a single broker; a value set in
// the file, the environment or by a flag wins either way, and a spawned
// child gets the effective value.
func TestSyncAlwaysDefault(t *testing.T) {
	const node = "broker:\n  token: t\n  cluster:\n    name: procq\n    routes: [nats-route://127.0.0.1:6222, nats-route://127.0.0.1:6223, nats-route://127.0.0.1:6224]\n"
	for _, tt := range []struct {
		name, file, env string
		want            bool
	}{
		{"single broker", "queue:\n  name: jobs\n", "", false},
		{"single broker, file true", "broker:\n  sync_always: true\n", "", true},
		{"cluster node", node, "", true},
		{"cluster node with replicas 3", node + "queue:\n  replicas: 3\n", "", true},
		{"cluster node, file false", node + "  sync_always: false\n", "", false},
		{"cluster node, environment false", node, "false", false},
		{"cluster node, file false, environment true", node + "  sync_always: false\n", "true", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("PROCQ_BROKER_SYNC_ALWAYS", tt.env)
			}
			c, err := Load(Options{Path: writeFile(t, tt.file)})
			if err != nil {
				t.Fatal(err)
			}
			if c.Broker.SyncAlways != tt.want {
				t.Errorf("broker.sync_always = %v, want %v", c.Broker.SyncAlways, tt.want)
			}
			want := "PROCQ_BROKER_SYNC_ALWAYS=" + strconv.FormatBool(tt.want)
			if env := c.Environ(); !slices.Contains(env, want) {
				t.Errorf("Environ() lacks %s", want)
			}
			if tt.env == "" {
				if d := loadFromEnviron(t, c); d.Broker.SyncAlways != tt.want {
					t.Errorf("child's broker.sync_always = %v, want %v", d.Broker.SyncAlways, tt.want)
				}
			}
		})
	}
	t.Run("flag", func(t *testing.T) {
		fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
		fs.Bool("sync-always", false, "")
		if err := fs.Parse([]string{"--sync-always=false"}); err != nil {
			t.Fatal(err)
		}
		c, err := Load(Options{Path: writeFile(t, node), Flags: map[*pflag.Flag]string{fs.Lookup("sync-always"): "broker.sync_always"}})
		if err != nil {
			t.Fatal(err)
		}
		if c.Broker.SyncAlways {
			t.Errorf("broker.sync_always = true with --sync-always=false on a cluster node")
		}
	})
}
