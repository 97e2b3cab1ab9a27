package broker

import (
	"context"
	"errors"
	"log/slog"

	"github.com/nats-io/nats.go"
)

// Dial connects to cc.URL. Where embed is set and no server answers there, it
// first starts an embedded server with sc, so that one command runs
// everything; the caller then owns that server and shuts it down after
// closing the connection. The returned ClientConfig is what another process
// needs to reach the same broker (the real URL and the token).
func Dial(ctx context.Context, cc ClientConfig, embed bool, sc Config, logger *slog.Logger) (*nats.Conn, *Server, ClientConfig, error) {
	cc = cc.withDefaults()
	if embed {
		nc, _, err := connectOnce(cc)
		if err == nil {
			return nc, nil, cc, nil
		}
		if errors.Is(err, nats.ErrNoServers) {
			return dialEmbedded(ctx, cc, sc, logger)
		}
	}
	nc, err := Connect(ctx, cc, logger)
	return nc, nil, cc, err
}

func dialEmbedded(ctx context.Context, cc ClientConfig, sc Config, logger *slog.Logger) (*nats.Conn, *Server, ClientConfig, error) {
	srv, err := Start(sc, logger)
	if err != nil {
		return nil, nil, cc, err
	}
	logger.InfoContext(ctx, "embedded broker started", "url", srv.ClientURL(), "store_dir", sc.StoreDir)
	cc.URL, cc.Token = srv.ClientURL(), srv.Token()
	nc, err := Connect(ctx, cc, logger)
	if err != nil {
		srv.Shutdown()
		return nil, nil, cc, err
	}
	return nc, srv, cc, nil
}
