package broker

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strconv"

	"github.com/nats-io/nats-server/v2/server"
)

// ClusterConfig makes the server a node of a NATS cluster: JetStream with
// Raft-replicated streams, nats-server's own clustering.
type ClusterConfig struct {
	// Name of the cluster, the same on every node. Empty: no cluster.
	Name string
	// Listen is the route listener's host:port. An empty host binds
	// 127.0.0.1. Defaults to 127.0.0.1:6222.
	Listen string
	// Routes are the nats-route://host:port URLs of the nodes; this node's
	// own is recognised and skipped by the server.
	Routes []string
	// Secret is the routes' password. Empty derives it from the client
	// token, which every node shares.
	Secret string
	// TLS, when set, makes the routes mutual TLS: each node presents its
	// certificate and verifies its peers' against the CA.
	TLS *TLSConfig
}

// routeUser is the user name of every route connection.
const routeUser = "procq-route"

// ErrTokenNotShared is returned by Start for a cluster node that has no
// client token to share: it would generate one of its own, which no other
// node knows.
var ErrTokenNotShared = errors.New("a cluster node needs the client token every node shares")

// clusterToken refuses a cluster node whose token would be generated here.
func clusterToken(cfg Config) error {
	if cfg.Cluster.Name == "" || cfg.Token != "" {
		return nil
	}
	if _, err := os.Stat(cfg.TokenFile); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: set broker.token, or broker.token_file to a file holding it (%s does not exist)", ErrTokenNotShared, cfg.TokenFile)
	}
	return nil
}

// routeSecret is the routes' password: the configured one, or one derived
// from the client token, so that a cluster needs no setting beyond the
// token its nodes share anyway.
func routeSecret(secret, token string) string {
	if secret != "" {
		return secret
	}
	sum := sha256.Sum256([]byte("procq cluster routes\x00" + token))
	return hex.EncodeToString(sum[:16])
}

// clusterOptions fills in the route listener and the routes, every route
// authenticated.
func clusterOptions(opts *server.Options, cc ClusterConfig, token string) error {
	if cc.Name == "" {
		return nil
	}
	listen := cc.Listen
	if listen == "" {
		listen = "127.0.0.1:6222"
	}
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("cluster listen %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("cluster listen %q: bad port", listen)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	secret := routeSecret(cc.Secret, token)
	opts.Cluster = server.ClusterOpts{
		Name:     cc.Name,
		Host:     host,
		Port:     port,
		Username: routeUser,
		Password: secret,
	}
	if cc.TLS != nil {
		tc, err := serverTLS(cc.TLS, true)
		if err != nil {
			return fmt.Errorf("cluster routes: %w", err)
		}
		// A node dials its peers as well as accepting them: it trusts the
		// same CA both ways, as nats-server's own config does for routes.
		tc.ClientAuth = tls.RequireAndVerifyClientCert
		tc.RootCAs = tc.ClientCAs
		opts.Cluster.TLSConfig, opts.Cluster.TLSTimeout = tc, tlsTimeout
	}
	for _, r := range cc.Routes {
		u, err := url.Parse(r)
		if err != nil {
			return fmt.Errorf("cluster route %q: %w", r, err)
		}
		u.Scheme = "nats-route"
		u.User = url.UserPassword(routeUser, secret)
		opts.Routes = append(opts.Routes, u)
	}
	return nil
}

// defaultName is the server name when none is configured: host name and
// client port, stable across restarts and unique on one machine.
func defaultName(port int) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "procq"
	}
	return fmt.Sprintf("%s-%d", host, port)
}
