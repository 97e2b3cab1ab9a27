package cli

import (
	"io"

	"github.com/procq/procq/broker"
	"github.com/procq/procq/config"
	"github.com/procq/procq/consumer"
	"github.com/procq/procq/link"
)

// The wiring: what each package needs, taken from the loaded configuration.
// config loads and validates only; this is the one place that knows both
// config's keys and the packages' own Config types.

// ClientConfig is how a process named name reaches the broker.
func ClientConfig(c *config.Config, name string) link.Config {
	return link.Config{
		URL:       c.Broker.URL,
		Token:     c.Broker.Token,
		TokenFile: c.Broker.TokenPath(),
		Timeout:   c.Broker.ConnectTimeout,
		Name:      name,
	}
}

// ServerConfig configures the embedded broker.
func ServerConfig(c *config.Config) broker.Config {
	return broker.Config{
		URL:        c.Broker.URL,
		StoreDir:   c.Broker.StoreDir,
		Token:      c.Broker.Token,
		TokenFile:  c.Broker.TokenPath(),
		SyncAlways: c.Broker.SyncAlways,
	}
}

// QueueConfig describes the configured queue.
func QueueConfig(c *config.Config) link.QueueConfig {
	return link.QueueConfig{
		Name:          c.Queue.Name,
		AckWait:       c.Queue.AckWait,
		MaxAckPending: c.Queue.MaxAckPending,
		MaxMessages:   c.Queue.MaxMessages,
		ResultsMaxAge: c.Pool.ResultsMaxAge,
	}
}

// WorkerConfig configures a consumer named name that prints to out.
func WorkerConfig(c *config.Config, name string, out io.Writer) consumer.Config {
	return consumer.Config{
		Name:        name,
		Concurrency: c.Consumers.Concurrency,
		Prefetch:    c.Consumers.Prefetch,
		MaxDeliver:  c.Queue.MaxDeliver,
		Out:         out,
	}
}
