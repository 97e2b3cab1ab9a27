package broker

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config configures the embedded server.
type Config struct {
	// URL gives the host and port to listen on. Port 0 picks a free port.
	// Defaults to nats://127.0.0.1:4222.
	URL string
	// StoreDir is the JetStream file store; it also holds the lock file.
	// Required.
	StoreDir string
	// Token authenticates clients. Empty means: read TokenFile, generating a
	// random token into it (mode 0600) on first start.
	Token string
	// TokenFile is where the token lives. Defaults to <StoreDir>/token.
	TokenFile string
	// SyncAlways fsyncs the store before each ack. Defaults to false.
	SyncAlways bool
	// SyncInterval is how often the store is fsynced when SyncAlways is
	// off. Zero: nats-server's default, 2 minutes.
	SyncInterval time.Duration
	// ReadyTimeout bounds the wait for the server to accept connections.
	// Defaults to 10s.
	ReadyTimeout time.Duration
	// Name is the server name, unique in a cluster. Defaults to the host
	// name and the client port.
	Name string
	// Cluster, when its Name is set, makes the server a cluster node.
	Cluster ClusterConfig
	// TLS, when set, makes the client port require TLS with its
	// certificate; with VerifyClients, clients must present a certificate
	// signed by its CA.
	TLS *TLSConfig
	// StoreKey, when set, encrypts the store at rest. A store written with
	// another key (or none) fails to start; it is never emptied.
	StoreKey string
	// Roles, when set, issues a credential per role (protocol.IssuedRoles)
	// for Queue, each with the subject permissions of its
	// work, written into CredentialsDir (defaults to <StoreDir>/creds);
	// the token stays the admin's credential.
	Roles          bool
	Queue          string
	CredentialsDir string
}

// TLSConfig names a TLS listener's files.
type TLSConfig struct {
	Cert, Key, CA string
	// VerifyClients requires client certificates signed by CA.
	VerifyClients bool
}

// tlsTimeout bounds a TLS handshake, in seconds.
const tlsTimeout = 2

// serverTLS builds a listener's TLS configuration from its files.
func serverTLS(t *TLSConfig, verify bool) (*tls.Config, error) {
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: t.Cert, KeyFile: t.Key, CaFile: t.CA,
		Verify: verify, Timeout: tlsTimeout})
	if err != nil {
		return nil, fmt.Errorf("tls (cert %s, key %s, ca %s): %w", t.Cert, t.Key, t.CA, err)
	}
	return tc, nil
}

func (c Config) withDefaults() Config {
	c.URL = cmp.Or(c.URL, "nats://127.0.0.1:4222")
	c.TokenFile = cmp.Or(c.TokenFile, c.StoreDir+"/token")
	c.ReadyTimeout = cmp.Or(c.ReadyTimeout, 10*time.Second)
	c.CredentialsDir = cmp.Or(c.CredentialsDir, filepath.Join(c.StoreDir, "creds"))
	return c
}

// Server is a running embedded NATS JetStream server.
type Server struct {
	ns    *server.Server
	lock  *dirLock
	token string
}

// Start starts the embedded server and returns once it accepts connections
// with JetStream enabled. It binds the URL's host, 127.0.0.1 when the URL
// names none, never all interfaces by accident; it owns no signals.
func Start(cfg Config, logger *slog.Logger) (*Server, error) {
	cfg = cfg.withDefaults()
	if cfg.StoreDir == "" {
		return nil, fmt.Errorf("start broker: store dir is required")
	}
	host, port, err := listenAddr(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	if err := clusterToken(cfg); err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	lock, err := lockDir(cfg.StoreDir)
	if err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	if err := checkStoreKey(cfg.StoreDir, cfg.StoreKey); err != nil {
		_ = lock.unlock()
		return nil, fmt.Errorf("start broker: store %s: %w", cfg.StoreDir, err)
	}
	s, err := start(cfg, host, port, lock, logger)
	if err != nil {
		_ = lock.unlock()
		return nil, fmt.Errorf("start broker on %s:%d: %w", host, port, err)
	}
	return s, nil
}

func start(cfg Config, host string, port int, lock *dirLock, logger *slog.Logger) (*Server, error) {
	token := cfg.Token
	if token == "" {
		var err error
		if token, err = loadOrCreateToken(cfg.TokenFile); err != nil {
			return nil, err
		}
	}
	name := cmp.Or(cfg.Name, defaultName(port))
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName:    name,
		Host:          host,
		Port:          port,
		NoSigs:        true,
		JetStream:     true,
		StoreDir:      cfg.StoreDir,
		SyncAlways:    cfg.SyncAlways,
		SyncInterval:  cfg.SyncInterval,
		Authorization: token,
		JetStreamKey:  cfg.StoreKey,
	}
	if cfg.Roles {
		if err := writeRoleFiles(cfg.CredentialsDir, token, cfg.Queue); err != nil {
			return nil, err
		}
		opts.Authorization = ""
		opts.CustomClientAuthentication = newRoleAuth(token, cfg.Queue)
	}
	if cfg.TLS != nil {
		tc, err := serverTLS(cfg.TLS, cfg.TLS.VerifyClients)
		if err != nil {
			return nil, err
		}
		opts.TLSConfig, opts.TLS, opts.TLSVerify, opts.TLSTimeout = tc, true, cfg.TLS.VerifyClients, tlsTimeout
	}
	if err := clusterOptions(opts, cfg.Cluster, token); err != nil {
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	ns.SetLoggerV2(&serverLogger{l: logger}, false, false, false)
	// A port already in use makes Start log and return without serving,
	// so readiness is checked rather than assumed.
	if portInUse(host, port) {
		return nil, fmt.Errorf("%w: port %d is in use", ErrNotReady, port)
	}
	if opts.Cluster.Port > 0 && portInUse(opts.Cluster.Host, opts.Cluster.Port) {
		return nil, fmt.Errorf("%w: cluster port %d is in use", ErrNotReady, opts.Cluster.Port)
	}
	ns.Start()
	if !ns.ReadyForConnections(cfg.ReadyTimeout) {
		ns.Shutdown()
		return nil, fmt.Errorf("%w within %v", ErrNotReady, cfg.ReadyTimeout)
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		return nil, ErrNoJetStream
	}
	return &Server{ns: ns, lock: lock, token: token}, nil
}

// SyncAlways tells whether JetStream fsyncs its store before each ack, as
// the running server has it.
func (s *Server) SyncAlways() bool { return s.ns.JetStreamConfig().SyncAlways }

// SyncInterval is how often JetStream fsyncs its store otherwise, as the
// running server has it.
func (s *Server) SyncInterval() time.Duration { return s.ns.JetStreamConfig().SyncInterval }

// ClientURL is the URL clients use to reach this server, with the real port.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Name is the server's name.
func (s *Server) Name() string { return s.ns.Name() }

// ClusterAddr is the route listener's address, "" outside a cluster.
func (s *Server) ClusterAddr() string {
	if a := s.ns.ClusterAddr(); a != nil {
		return a.String()
	}
	return ""
}

// Token is the token clients must present.
func (s *Server) Token() string { return s.token }

// Shutdown stops the server, waits for it and releases the store lock.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	_ = s.lock.unlock()
}

// Run serves until ctx is done, then shuts down.
func (s *Server) Run(ctx context.Context) error {
	<-ctx.Done()
	s.Shutdown()
	return nil
}

// listenAddr takes the host and port to listen on from a nats:// URL.
func listenAddr(rawURL string) (string, int, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", 0, err
	}
	host := cmp.Or(u.Hostname(), "127.0.0.1")
	port := 4222
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return "", 0, fmt.Errorf("bad port in %q", rawURL)
		}
	}
	return host, port, nil
}

func portInUse(host string, port int) bool {
	if port <= 0 {
		return false
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return true
	}
	_ = l.Close()
	return false
}

// MonitorHandler serves nats-server's own monitoring endpoints (/varz,
// /jsz, /connz, /routez, /subsz, /healthz, /accountz, /leafz, /gatewayz,
// /raftz), the JSON the standard NATS tooling reads
// (prometheus-nats-exporter, surveyor). The caller guards it: nats-server
// itself would serve them to anyone.
func (s *Server) MonitorHandler() http.Handler {
	mux := http.NewServeMux()
	for path, h := range map[string]http.HandlerFunc{
		"/":         s.ns.HandleRoot,
		"/varz":     s.ns.HandleVarz,
		"/jsz":      s.ns.HandleJsz,
		"/connz":    s.ns.HandleConnz,
		"/routez":   s.ns.HandleRoutez,
		"/subsz":    s.ns.HandleSubsz,
		"/healthz":  s.ns.HandleHealthz,
		"/accountz": s.ns.HandleAccountz,
		"/leafz":    s.ns.HandleLeafz,
		"/gatewayz": s.ns.HandleGatewayz,
		"/raftz":    s.ns.HandleRaftz,
	} {
		mux.Handle(path, h)
	}
	return mux
}
