package link

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
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
	// Timeout bounds how long Connect waits and retries for the broker, and
	// how long the connection tries to reconnect once lost. Defaults to DefaultConnectTimeout.
	Timeout time.Duration
	// Name identifies the client to the server, e.g. "consumer C-1".
	Name string
}

func (c Config) withDefaults() Config {
	c.URL = cmp.Or(c.URL, DefaultURL)
	c.Timeout = cmp.Or(c.Timeout, DefaultConnectTimeout)
	return c
}

const retryWait = 250 * time.Millisecond

// Connect connects to the broker, waiting and retrying until cfg.Timeout so
// that processes can start in any order. A wrong token fails at once.
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
			return nil, fmt.Errorf("connect %s: %w", cfg.URL, err)
		}
		if attempt == 1 {
			logger.WarnContext(ctx, "waiting for broker", "url", cfg.URL, "timeout", cfg.Timeout, "error", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect %s: %w after %v: %w", cfg.URL, ErrUnreachable, cfg.Timeout, err)
		case <-time.After(retryWait):
		}
	}
}

// connectOnce makes one attempt. final says that retrying cannot help.
func connectOnce(cfg Config) (nc *nats.Conn, final bool, err error) {
	token, known := cfg.Token, cfg.Token != ""
	if !known && cfg.TokenFile != "" {
		token, err = ReadToken(cfg.TokenFile)
		switch {
		case err == nil:
			known = true
		case !errors.Is(err, fs.ErrNotExist):
			return nil, true, err
		}
	}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.Timeout(2 * time.Second),
		nats.ReconnectWait(retryWait),
		nats.MaxReconnects(int(cfg.Timeout / retryWait)),
	}
	if token != "" {
		opts = append(opts, nats.Token(token))
	}
	nc, err = nats.Connect(cfg.URL, opts...)
	if err != nil {
		// Without a token the broker may be about to write one: retry. With
		// one, an authorization error is final.
		authErr := errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired)
		return nil, authErr && known, err
	}
	return nc, false, nil
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
	logger.Info("connected to broker", "server", nc.ConnectedServerName(), "url", nc.ConnectedUrlRedacted(),
		"cluster", nc.ConnectedClusterName())
	nc.SetDisconnectErrHandler(func(nc *nats.Conn, err error) {
		if err == nil || nc.IsClosed() {
			return // closed on purpose
		}
		logger.Warn("broker link lost; reconnecting", "error", err, "waiting_for", "a broker at broker.url", "timeout_reconnects", nc.Opts.MaxReconnect)
	})
	nc.SetReconnectHandler(func(nc *nats.Conn) {
		logger.Info("reconnected to broker", "server", nc.ConnectedServerName(), "url", nc.ConnectedUrlRedacted())
	})
}
