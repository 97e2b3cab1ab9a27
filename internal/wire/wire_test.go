package wire

import (
	"slices"
	"testing"

	"github.com/procq/procq/config"
	"github.com/procq/procq/link"
)

// Spawned consumers get consecutive metrics ports from metrics.listen;
// port 0 leaves each child to pick its own; an empty URL or token does
// not override the children's configuration.
func TestSpawnConfigMetricsPorts(t *testing.T) {
	c := &config.Config{}
	c.Consumers.Path = "/bin/consumer"
	c.Queue.Name = "q"
	c.Metrics.Listen = "127.0.0.1:9464"
	sc, err := SpawnConfig(c, link.Config{}, nil, ConsumerNames(3), 0)
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
	if slices.ContainsFunc(sc.Env, func(kv string) bool { return kv == "PROCQ_BROKER_TOKEN=" || kv == "PROCQ_BROKER_URL=" }) {
		t.Errorf("an empty URL or token overrides the children's: %v", sc.Env)
	}
	c.Metrics.Listen = "127.0.0.1:0"
	if sc, _ := SpawnConfig(c, link.Config{}, nil, ConsumerNames(2), 0); sc.ChildEnv != nil {
		t.Error("port 0: the children get ports of their own, want none given")
	}
}
