package config

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/procq/procq/broker"
	"github.com/procq/procq/consumer"
)

// ClientConfig is how a process named name reaches the broker.
func (c *Config) ClientConfig(name string) broker.ClientConfig {
	return broker.ClientConfig{
		URL:       c.Broker.URL,
		Token:     c.Broker.Token,
		TokenFile: c.Broker.TokenPath(),
		Timeout:   c.Broker.ConnectTimeout,
		Name:      name,
	}
}

// ServerConfig configures the embedded broker.
func (c *Config) ServerConfig() broker.Config {
	return broker.Config{
		URL:        c.Broker.URL,
		StoreDir:   c.Broker.StoreDir,
		Token:      c.Broker.Token,
		TokenFile:  c.Broker.TokenPath(),
		SyncAlways: c.Broker.SyncAlways,
	}
}

// QueueConfig describes the configured queue.
func (c *Config) QueueConfig() broker.QueueConfig {
	return broker.QueueConfig{
		Name:          c.Queue.Name,
		AckWait:       c.Queue.AckWait,
		MaxAckPending: c.Queue.MaxAckPending,
		MaxMessages:   c.Queue.MaxMessages,
		ResultsMaxAge: c.Pool.ResultsMaxAge,
	}
}

// WorkerConfig configures a consumer named name that prints to out.
func (c *Config) WorkerConfig(name string, out io.Writer) consumer.Config {
	return consumer.Config{
		Name:        name,
		Concurrency: c.Consumers.Concurrency,
		Prefetch:    c.Consumers.Prefetch,
		MaxDeliver:  c.Queue.MaxDeliver,
		Out:         out,
	}
}

// Environ renders every effective value as a PROCQ_<SECTION>_<KEY>
// variable, sorted, so a spawned child sees exactly this configuration
// whatever its own config file says.
func (c *Config) Environ() []string {
	env := make([]string, 0, len(c.values))
	for k, v := range c.values {
		env = append(env, EnvName(k)+"="+fmt.Sprint(v))
	}
	sort.Strings(env)
	return env
}

// EnvName is the environment variable that overrides key.
func EnvName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}
