package link

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultURL is where clients look for the broker, and where the broker
// listens; DefaultConnectTimeout bounds a client's wait for it.
const (
	DefaultURL            = "nats://127.0.0.1:4222"
	DefaultConnectTimeout = 30 * time.Second
)

// Config says how a client reaches the broker.
type Config struct {
	// URL of the NATS server. Defaults to DefaultURL.
	URL string
	// Token to present. Empty means: read TokenFile; where that does not
	// exist, connect without a token (a server without auth).
	Token string
	// TokenFile is the broker's token file.
	TokenFile string
	// Creds, NKey, or User and Password are a NATS user's credentials,
	// presented instead of a token: a JWT credentials file, an NKEY seed
	// file, a user name and password.
	Creds, NKey    string
	User, Password string
	// RoleFile is the credential of this process's role on procq's own
	// broker (broker.credentials_dir), used when no credential above is
	// given, the file exists and its user is RoleUser (the role on this
	// process's queue); else the token file's token is.
	RoleFile, RoleUser string
	// TLS, when set, makes the connection TLS, trusting its CA and
	// presenting its certificate when it has one.
	TLS *TLSFiles
	// Timeout bounds how long Connect waits and retries for the broker, and
	// how long the connection tries to reconnect once lost. Defaults to DefaultConnectTimeout.
	Timeout time.Duration
	// Name identifies the client to the server, e.g. "consumer C-1".
	Name string
}

// TLSFiles are a client's TLS files: the CA that signed the broker's
// certificate (empty: the system's roots), and the client's own
// certificate and key for a broker that verifies clients.
type TLSFiles struct {
	CA, Cert, Key string
}

func (c Config) withDefaults() Config {
	c.URL = cmp.Or(c.URL, DefaultURL)
	c.Timeout = cmp.Or(c.Timeout, DefaultConnectTimeout)
	return c
}

const retryWait = 250 * time.Millisecond

// pingInterval is how often a client pings its broker: a fifteenth of
// broker.connect_timeout, between 2s and 5s (2s up to the default 30s;
// shorter, a pong queued behind a busy link's data or a pause of a loaded
// machine would pass for a dead link). A link that went silent
// (a node cut off by the network, or frozen, whose TCP connection is not
// closed) is noticed when maxPingsOut pings in a row go unanswered, or a
// write blocks, within three intervals (6 s by default), and the client
// reconnects to a node that answers; nats.go's defaults, 2 minutes of
// pings and a minute of a blocked write, left a client of a cut-off node
// waiting that long, its puts unacknowledged past queue.put_timeout.
func pingInterval(connectTimeout time.Duration) time.Duration {
	return min(max(connectTimeout/15, 2*time.Second), 5*time.Second)
}

// maxPingsOut is how many pings may go unanswered before the link is
// taken for dead.
const maxPingsOut = 2

// silentAfter is how long a link may stay silent before the client
// takes it for dead: maxPingsOut+1 ping intervals.
func silentAfter(connectTimeout time.Duration) time.Duration {
	return (maxPingsOut + 1) * pingInterval(connectTimeout)
}

// Connect connects to the broker, waiting and retrying until cfg.Timeout so
// that processes can start in any order. A refused or missing credential
// and a failed TLS handshake fail at once, saying which setting to change.
func Connect(ctx context.Context, cfg Config, logger *slog.Logger) (*nats.Conn, error) {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		nc, final, err := connectOnce(cfg)
		if err == nil {
			LogEvents(nc, logger)
			return nc, nil
		}
		if final {
			return nil, err
		}
		if attempt == 1 {
			logger.WarnContext(ctx, "waiting for broker", "url", Redact(cfg.URL), "timeout", cfg.Timeout, "error", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect %s: %w after %v: %w", Redact(cfg.URL), ErrUnreachable, cfg.Timeout, err)
		case <-time.After(retryWait):
		}
	}
}

// connectOnce makes one attempt. final says that retrying cannot help:
// only a broker that does not answer (not up yet, restarting, out of
// reach) is worth waiting for; a refused credential or a failed TLS
// handshake ends at once with what to change.
func connectOnce(cfg Config) (nc *nats.Conn, final bool, err error) {
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.Timeout(2 * time.Second),
		nats.ReconnectWait(retryWait),
		nats.MaxReconnects(int(cfg.Timeout / retryWait)),
		nats.PingInterval(pingInterval(cfg.Timeout)),
		nats.MaxPingsOutstanding(maxPingsOut),
		// A write blocked that long (the socket's buffers full towards a
		// peer that stopped acknowledging) is a dead link too; it holds
		// the connection's lock, so the pings could not tell.
		nats.FlusherTimeout(silentAfter(cfg.Timeout)),
	}
	cred, noToken, err := credential(cfg)
	if err != nil {
		return nil, true, err
	}
	if cred != nil {
		opts = append(opts, cred)
	}
	if t := cfg.TLS; t != nil {
		opts = append(opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12}))
		if t.CA != "" {
			opts = append(opts, nats.RootCAs(t.CA))
		}
		if t.Cert != "" {
			opts = append(opts, nats.ClientCert(t.Cert, t.Key))
		}
	}
	nc, err = nats.Connect(cfg.URL, opts...)
	if err == nil {
		return nc, false, nil
	}
	if retryable(err) && !tlsFailed(cfg, err) {
		return nil, false, err
	}
	if noToken && isAuth(err) {
		if _, serr := os.Stat(cfg.TokenFile); serr == nil {
			return nil, false, err // the broker wrote its token just now: read it
		}
		return nil, true, fmt.Errorf("%w: broker.token is empty and broker.token_file %s does not exist (%v)", ErrNoToken, cfg.TokenFile, err)
	}
	return nil, true, explain(cfg, err)
}

// ErrNoToken says a broker wants a credential and this client has none.
var ErrNoToken = errors.New("no token")

// credential is the option presenting cfg's credential: the user's, or
// the token (read from TokenFile when not given). noToken says the
// client presents nothing because the token file does not exist.
func credential(cfg Config) (opt nats.Option, noToken bool, err error) {
	switch {
	case cfg.Creds != "":
		return nats.UserCredentials(cfg.Creds), false, nil
	case cfg.NKey != "":
		opt, err := nats.NkeyOptionFromSeed(cfg.NKey)
		if err != nil {
			return nil, false, fmt.Errorf("broker.nkey %s: %w", cfg.NKey, err)
		}
		return opt, false, nil
	case cfg.User != "":
		return nats.UserInfo(cfg.User, cfg.Password), false, nil
	case cfg.Token != "":
		return nats.Token(cfg.Token), false, nil
	}
	if cfg.RoleFile != "" {
		user, password, err := ReadRoleFile(cfg.RoleFile)
		switch {
		case err == nil && user == cfg.RoleUser:
			return nats.UserInfo(user, password), false, nil
		case err == nil: // another queue's role: the token it is
		case !errors.Is(err, fs.ErrNotExist):
			return nil, false, fmt.Errorf("broker.credentials_dir: %w", err)
		}
	}
	if cfg.TokenFile == "" {
		return nil, false, nil
	}
	token, err := ReadToken(cfg.TokenFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, true, nil // perhaps a broker about to write it; perhaps none needed
	case err != nil:
		return nil, false, fmt.Errorf("broker.token_file: %w", err)
	}
	return nats.Token(token), false, nil
}

// retryable: the broker did not answer, or the link failed mid-way;
// waiting may help.
func retryable(err error) bool {
	var ne net.Error
	return errors.Is(err, nats.ErrNoServers) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.As(err, &ne) && ne.Timeout()
}

// tlsFailed: the link broke during or right after the TLS handshake (a
// broker that wants a client certificate may just close it): waiting
// would not mend that.
func tlsFailed(cfg Config, err error) bool {
	return cfg.TLS != nil && strings.Contains(err.Error(), "tls")
}

func isAuth(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked)
}

// explain turns a final connection error into one line that says which
// setting to change.
func explain(cfg Config, err error) error {
	ca := "the system's roots (broker.tls.ca is empty)"
	if cfg.TLS != nil && cfg.TLS.CA != "" {
		ca = "broker.tls.ca " + cfg.TLS.CA
	}
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	switch {
	case isAuth(err):
		return fmt.Errorf("connect %s: the broker refused %s: %w", Redact(cfg.URL), credentialName(cfg), err)
	case errors.As(err, &unknown):
		return fmt.Errorf("connect %s: the broker's certificate is not signed by %s: %w", Redact(cfg.URL), ca, err)
	case errors.As(err, &hostname):
		return fmt.Errorf("connect %s: the broker's certificate is not for this host (broker.url): %w", Redact(cfg.URL), err)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return fmt.Errorf("connect %s: the broker's certificate has expired or is not valid yet: %w", Redact(cfg.URL), err)
	case errors.As(err, &invalid):
		return fmt.Errorf("connect %s: the broker's certificate is not valid under %s: %w", Redact(cfg.URL), ca, err)
	case errors.Is(err, nats.ErrSecureConnWanted):
		return fmt.Errorf("connect %s: broker.tls is set but the broker does not offer TLS: %w", Redact(cfg.URL), err)
	case strings.Contains(err.Error(), "certificate required") || strings.Contains(err.Error(), "bad certificate") ||
		cfg.TLS != nil && cfg.TLS.Cert == "" && strings.Contains(err.Error(), "tls") && !errors.Is(err, io.EOF):
		return fmt.Errorf("connect %s: the broker requires a client certificate signed by its CA (broker.tls.cert, broker.tls.key, broker.tls.verify_clients): %w", Redact(cfg.URL), err)
	}
	return fmt.Errorf("connect %s: %w", Redact(cfg.URL), err)
}

// credentialName says which credential the client presented.
func credentialName(cfg Config) string {
	switch {
	case cfg.Creds != "":
		return "broker.creds " + cfg.Creds
	case cfg.NKey != "":
		return "broker.nkey " + cfg.NKey
	case cfg.User != "":
		return "broker.user " + cfg.User + " and its broker.password"
	case cfg.Token != "":
		return "broker.token"
	case cfg.RoleFile != "":
		if _, err := os.Stat(cfg.RoleFile); err == nil {
			return "the role credential in " + cfg.RoleFile + " (broker.credentials_dir)"
		}
	case cfg.TokenFile != "":
		return "the token in broker.token_file " + cfg.TokenFile
	}
	return "a connection without credentials"
}

// ErrUnreachable is returned when no broker answered within the connect
// timeout.
var ErrUnreachable = errors.New("broker unreachable")

// Close flushes what the connection still buffers (acks, results) and
// closes it.
func Close(nc *nats.Conn) {
	_ = nc.FlushTimeout(5 * time.Second)
	nc.Close()
}

// ConnectOnce makes one attempt to connect, without waiting for a broker:
// nats.ErrNoServers says that nothing answers at cfg.URL.
func ConnectOnce(cfg Config) (*nats.Conn, error) {
	nc, _, err := connectOnce(cfg.withDefaults())
	return nc, err
}

// Redact is a broker URL, or a comma-separated list of them, with any
// user info (which may be a token or a password) replaced by "redacted":
// what logs and errors show.
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		p, err := url.Parse(strings.TrimSpace(u))
		switch {
		case err != nil && strings.Contains(u, "@"):
			parts[i] = "(a URL with user info that does not parse)"
		case err == nil && p.User != nil:
			p.User = url.User("redacted")
			parts[i] = p.String()
		}
	}
	return strings.Join(parts, ",")
}

// FormatRoleFile is the content of a role's credential file: one line,
// "<user>:<password>".
func FormatRoleFile(user, password string) []byte { return []byte(user + ":" + password + "\n") }

// ReadRoleFile reads a role's credential file.
func ReadRoleFile(path string) (user, password string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	user, password, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
	if !ok || user == "" || password == "" {
		return "", "", fmt.Errorf("credential file %s: want one line <user>:<password>", path)
	}
	return user, password, nil
}

// ReadToken reads a token file written by the broker.
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	return tok, nil
}

// LogEvents logs the connection's server now and whenever it changes: a
// lost link, a reconnect (to which node of a cluster), the end.
func LogEvents(nc *nats.Conn, logger *slog.Logger) {
	logger.Info("connected to broker", "server", nc.ConnectedServerName(), "url", Redact(nc.ConnectedUrl()),
		"cluster", nc.ConnectedClusterName())
	nc.SetDisconnectErrHandler(func(nc *nats.Conn, err error) {
		if err == nil || nc.IsClosed() {
			return // closed on purpose
		}
		logger.Warn("broker link lost; reconnecting", "error", err, "waiting_for", "a broker at broker.url", "timeout_reconnects", nc.Opts.MaxReconnect)
	})
	nc.SetReconnectHandler(func(nc *nats.Conn) {
		logger.Info("reconnected to broker", "server", nc.ConnectedServerName(), "url", Redact(nc.ConnectedUrl()))
	})
}
