// Package serve builds the embedded and standalone broker's configuration
// from the loaded config (the client side is package wire).
package serve

import (
	"github.com/procq/procq/broker"
	"github.com/procq/procq/config"
)

// ServerConfig configures the embedded broker.
func ServerConfig(c *config.Config) broker.Config {
	return broker.Config{
		URL:        c.Broker.URLs()[0],
		StoreDir:   c.Broker.StoreDir,
		Token:      c.Broker.Token,
		TokenFile:  c.Broker.TokenPath(),
		SyncAlways: c.Broker.SyncAlways,
		Name:       c.Broker.Name,
	}
}

// NodeConfig configures the broker executable: the server, and its place
// in a cluster. The producer's embedded fallback never joins a cluster, so
// one config file can serve brokers and clients alike.
func NodeConfig(c *config.Config) broker.Config {
	sc := ServerConfig(c)
	sc.Cluster = broker.ClusterConfig{
		Name:   c.Broker.Cluster.Name,
		Listen: c.Broker.Cluster.Listen,
		Routes: c.Broker.Cluster.Routes,
		Secret: c.Broker.Cluster.Secret,
	}
	return sc
}
