// Package serve builds the embedded and standalone broker's configuration
// from the loaded config (the client side is package wire).
package serve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/procq/procq/broker"
	"github.com/procq/procq/config"
	"github.com/procq/procq/link"
	"github.com/procq/procq/ops"
	"github.com/procq/procq/ops/dashboard"
	"github.com/procq/procq/ops/endpoint"
	"github.com/procq/procq/protocol"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ServerConfig configures the embedded broker.
func ServerConfig(c *config.Config) (broker.Config, error) {
	sc := broker.Config{
		URL:          c.Broker.URLs()[0],
		StoreDir:     c.Broker.StoreDir,
		Token:        c.Broker.Token,
		TokenFile:    c.Broker.TokenPath(),
		SyncAlways:   c.Broker.SyncAlways,
		SyncInterval: c.Broker.SyncInterval,
		Name:         c.Broker.Name,
		StoreKey:     c.Broker.StoreKey,
		Roles:        c.Broker.RoleCredentials,
		Queue:        c.Queue.Name,
	}
	sc.CredentialsDir = c.Broker.CredentialsPath()
	t := c.Broker.TLS
	if t.Cert != "" {
		sc.TLS = &broker.TLSConfig{Cert: t.Cert, Key: t.Key, CA: t.CA, VerifyClients: t.VerifyClients}
	} else if strings.HasPrefix(sc.URL, "tls://") {
		return sc, c.ErrorFor("broker.tls.cert", fmt.Errorf("is empty but broker.url %s asks the broker to listen with TLS: set broker.tls.cert and broker.tls.key", sc.URL))
	}
	return sc, nil
}

// Declare declares, on a broker that issues role credentials, what its
// roles may use but not create: the configured queue's streams and
// buckets, and the pipes', so that consumers started before any producer
// find them. A cluster's nodes leave it to the first producer, which
// declares them with the cluster's replica count.
func Declare(ctx context.Context, c *config.Config, srv *broker.Server, logger *slog.Logger) error {
	if !c.Broker.RoleCredentials || c.Broker.Cluster.Name != "" {
		return nil
	}
	nc, err := link.Connect(ctx, adminClient(c, srv, srv.Token(), "broker declare"), logger)
	if err != nil {
		return err
	}
	defer link.Close(nc)
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	qc := c.QueueShape()
	qc.Logger = logger
	if _, err := protocol.EnsureQueue(ctx, js, qc); err != nil {
		return StartError(c, err)
	}
	if _, err := link.EnsureStream(ctx, js, protocol.PipesStreamConfig(c.Queue.Replicas), logger); err != nil {
		return err
	}
	_, err = link.EnsureKeyValue(ctx, js, protocol.PipeEndsBucketConfig(c.Queue.Replicas), logger)
	return err
}

// adminClient is how the broker's own connections (name) reach srv: the
// token, over the configured TLS.
func adminClient(c *config.Config, srv *broker.Server, token, name string) link.Config {
	return link.Config{URL: srv.ClientURL(), Token: token, Name: name, TLS: c.Broker.Client(protocol.RoleAdmin, "", "").TLS}
}

// StartError names the setting behind a broker that cannot start for a
// reason of configuration: a cluster node without the shared token
// (broker.token or broker.token_file), a store key that does not open the
// store (broker.store_key). Other errors pass as they are.
func StartError(c *config.Config, err error) error {
	switch {
	case errors.Is(err, broker.ErrTokenNotShared) && c.Broker.TokenFile != "":
		return c.ErrorFor("broker.token_file", err)
	case errors.Is(err, broker.ErrTokenNotShared):
		return c.ErrorFor("broker.token", err)
	case errors.Is(err, broker.ErrStoreKey):
		return c.ErrorFor("broker.store_key", err)
	}
	return err
}

// NodeConfig configures the broker executable: the server, and its place
// in a cluster. The producer's embedded fallback never joins a cluster, so
// one config file can serve brokers and clients alike.
func NodeConfig(c *config.Config) (broker.Config, error) {
	sc, err := ServerConfig(c)
	sc.Cluster = broker.ClusterConfig{
		Name:   c.Broker.Cluster.Name,
		Listen: c.Broker.Cluster.Listen,
		Routes: c.Broker.Cluster.Routes,
		Secret: c.Broker.Cluster.Secret,
	}
	// The routes use broker.tls's files unless broker.cluster.tls names
	// their own.
	t, rt := c.Broker.TLS, c.Broker.Cluster.TLS
	if cert := cmp.Or(rt.Cert, t.Cert); cert != "" {
		sc.Cluster.TLS = &broker.TLSConfig{Cert: cert, Key: cmp.Or(rt.Key, t.Key), CA: cmp.Or(rt.CA, t.CA), VerifyClients: true}
	}
	return sc, err
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
		// The broker's own connection: its token, and its TLS files.
		nc, err := link.Connect(ctx, adminClient(c, srv, token, "broker endpoints"), logger)
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
		b, err := endpoint.Serve(ctx, addr, h, endpoint.TLSFiles{Cert: c.Broker.TLS.Cert, Key: c.Broker.TLS.Key}, what, logger)
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
