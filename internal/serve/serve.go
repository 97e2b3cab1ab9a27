// Package serve builds the embedded and standalone broker's configuration
// from the loaded config (the client side is package wire).
package serve

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/procq/procq/broker"
	"github.com/procq/procq/config"
	"github.com/procq/procq/link"
	"github.com/procq/procq/ops"
	"github.com/procq/procq/ops/dashboard"
	"github.com/procq/procq/ops/endpoint"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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

// Endpoints serves what broker.metrics, broker.monitor and broker.ui ask
// for on srv, each behind the client token, until ctx ends; the metrics
// and the dashboard read JetStream through a client connection of their
// own. It returns the bound addresses by endpoint.
func Endpoints(ctx context.Context, c *config.Config, srv *broker.Server, logger *slog.Logger) (map[string]string, error) {
	bound := map[string]string{}
	if c.Broker.Metrics == "" && c.Broker.Monitor == "" && c.Broker.UI == "" {
		return bound, nil
	}
	token := srv.Token()
	var js jetstream.JetStream
	if c.Broker.Metrics != "" || c.Broker.UI != "" {
		nc, err := link.Connect(ctx, link.Config{URL: srv.ClientURL(), Token: token, Name: "broker endpoints"}, logger)
		if err != nil {
			return nil, err
		}
		context.AfterFunc(ctx, func() { link.Close(nc) })
		if js, err = jetstream.New(nc); err != nil {
			return nil, err
		}
	}
	serveOne := func(key, addr, what string, h http.Handler) error {
		if addr == "" {
			return nil
		}
		b, err := endpoint.Serve(ctx, addr, h, what, logger)
		if err != nil {
			return c.ErrorFor(key, err)
		}
		bound[key] = b
		return nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(ops.NewCollector(js, 5*time.Second, logger), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := serveOne("broker.metrics", c.Broker.Metrics, "broker metrics", endpoint.RequireToken(token, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))); err != nil {
		return nil, err
	}
	if err := serveOne("broker.monitor", c.Broker.Monitor, "NATS monitoring", endpoint.RequireToken(token, srv.MonitorHandler())); err != nil {
		return nil, err
	}
	var ui http.Handler
	if c.Broker.UI != "" {
		ui = dashboard.NewDashboard(ctx, js, token, logger)
	}
	if err := serveOne("broker.ui", c.Broker.UI, "dashboard", ui); err != nil {
		return nil, err
	}
	return bound, nil
}
