package broker

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/nats-io/nats.go"

	"github.com/procq/procq/link"
)

// Dial connects to cc.URL. Where embed is set and no server answers there, it
// first starts an embedded server with sc, so that one command runs
// everything; the caller then owns that server and shuts it down after
// closing the connection. The returned link.Config is what another process
// needs to reach the same broker (the real URL and the token).
func Dial(ctx context.Context, cc link.Config, embed bool, sc Config, logger *slog.Logger) (*nats.Conn, *Server, link.Config, error) {
	if embed {
		nc, err := link.ConnectOnce(cc)
		if err == nil {
			link.LogEvents(nc, logger)
			return nc, nil, cc, nil
		}
		if errors.Is(err, nats.ErrNoServers) {
			return dialEmbedded(ctx, cc, sc, logger)
		}
	}
	nc, err := link.Connect(ctx, cc, logger)
	return nc, nil, cc, err
}

func dialEmbedded(ctx context.Context, cc link.Config, sc Config, logger *slog.Logger) (*nats.Conn, *Server, link.Config, error) {
	srv, err := Start(sc, logger)
	if err != nil {
		return nil, nil, cc, err
	}
	logger.InfoContext(ctx, "embedded broker started", "url", srv.ClientURL(), "store_dir", sc.StoreDir)
	cc.URL = srv.ClientURL()
	if _, err := os.Stat(cc.RoleFile); cc.RoleFile == "" || err != nil {
		cc.Token = srv.Token() // no role credential: the admin's token
	}
	nc, err := link.Connect(ctx, cc, logger)
	if err != nil {
		srv.Shutdown()
		return nil, nil, cc, err
	}
	return nc, srv, cc, nil
}
