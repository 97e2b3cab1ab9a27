package procq

import (
	"slices"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/procq/procq/config"
)

// Spawned consumers get consecutive metrics ports from metrics.listen;
// port 0 leaves each child to pick its own; an empty token does not
// override the children's configuration.
func TestSpawnConfigMetricsPorts(t *testing.T) {
	cfg := &config.Config{}
	cfg.Consumers.Path = "/bin/consumer"
	cfg.Queue.Name = "q"
	cfg.Metrics.Listen = "127.0.0.1:9464"
	c := &Client{cfg: cfg, nc: &nats.Conn{}}
	sc, err := c.spawnConfig(nil, consumerNames(3))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := range 3 {
		got = append(got, sc.ChildEnv(i)...)
	}
	want := []string{"PROCQ_METRICS_LISTEN=127.0.0.1:9464", "PROCQ_METRICS_LISTEN=127.0.0.1:9465", "PROCQ_METRICS_LISTEN=127.0.0.1:9466"}
	if !slices.Equal(got, want) {
		t.Errorf("children's metrics ports %v, want %v", got, want)
	}
	if slices.Contains(sc.Env, "PROCQ_BROKER_TOKEN=") {
		t.Errorf("an empty token overrides the children's: %v", sc.Env)
	}
	cfg.Metrics.Listen = "127.0.0.1:0"
	if sc, _ := c.spawnConfig(nil, consumerNames(2)); sc.ChildEnv != nil {
		t.Error("port 0: the children get ports of their own, want none given")
	}
}

// A child is told the config file the producer read (--config FILE, ahead
// of its subcommand), and its name last (--name), as the child-process
// protocol says.
func TestSpawnConfigArgv(t *testing.T) {
	cfg := &config.Config{File: "/etc/procq.yaml"}
	cfg.Consumers.Path = "/bin/consumer"
	c := &Client{cfg: cfg, nc: &nats.Conn{}}
	sc, err := c.spawnConfig([]string{"pipe", "--pipe", "p"}, consumerNames(1))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"--config", "/etc/procq.yaml", "pipe", "--pipe", "p"}; !slices.Equal(sc.Args, want) {
		t.Errorf("child args %q, want %q", sc.Args, want)
	}
	if !slices.Contains(sc.Env, "PROCQ_QUEUE_NAME=") || !slices.Contains(sc.Env, "PROCQ_BROKER_URL=") {
		t.Errorf("child env %q: want queue.name and broker.url passed", sc.Env)
	}
}
