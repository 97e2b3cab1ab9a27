package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/procq/procq"
	"github.com/procq/procq/broker"
	"github.com/procq/procq/config"
	"github.com/procq/procq/internal/cli"
	"github.com/procq/procq/internal/serve"
	"github.com/procq/procq/link"
	"github.com/procq/procq/protocol"
)

// session is what every producer subcommand sets up: config, log, a broker
// connection (hosting the broker when configured and none runs) and the
// client on it, procq's front door.
type session struct {
	cfg *config.Config
	// childOut receives the spawned consumers' stdout.
	childOut io.Writer
	log      *slog.Logger
	nc       *nats.Conn
	c        *procq.Client
	srv      *broker.Server
	closer   io.Closer
	// stopEndpoints stops the embedded broker's metrics, monitoring and
	// dashboard.
	stopEndpoints context.CancelFunc
}

func openSession(ctx context.Context, cfg *config.Config, childOut io.Writer) (*session, error) {
	logger, closeLog, err := cli.Logger("producer", "", cfg.Log, os.Stderr)
	if err != nil {
		return nil, err
	}
	s := &session{cfg: cfg, log: logger, closer: closeLog, childOut: childOut}
	sc, err := serve.ServerConfig(cfg)
	if err != nil && cfg.Broker.Embedded {
		s.close()
		return nil, err
	}
	var reach link.Config
	s.nc, s.srv, reach, err = broker.Dial(ctx, cfg.Broker.Client(protocol.RoleProducer, cfg.Queue.Name, "producer"), cfg.Broker.Embedded, sc, logger)
	if err != nil {
		s.close()
		return nil, serve.StartError(cfg, err)
	}
	if s.srv != nil {
		// The embedded broker serves its endpoints as the standalone one does.
		ectx, stop := context.WithCancel(context.WithoutCancel(ctx))
		s.stopEndpoints = stop
		if _, err = serve.Endpoints(ectx, cfg, s.srv, logger); err != nil {
			s.close()
			return nil, err
		}
	}
	// The children reach the broker this process reached (an embedded
	// one's address, say).
	ccfg := *cfg
	ccfg.Broker.URL = reach.URL
	if s.c, err = procq.Connect(ctx, procq.WithConfig(&ccfg), procq.WithConn(s.nc), procq.WithLogger(logger)); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *session) close() {
	if s.stopEndpoints != nil {
		s.stopEndpoints()
	}
	if s.c != nil {
		s.c.Close()
	}
	if s.nc != nil {
		link.Close(s.nc)
	}
	if s.srv != nil {
		s.srv.Shutdown()
	}
	_ = s.closer.Close()
}

// pool opens the pool a command works with, served by n consumers: the
// processes it starts (consumers.spawn) or consumers started by hand,
// each given its sentinel when the pool closes.
func (s *session) pool(ctx context.Context, n int, opts ...procq.PoolOption) (*procq.Pool, error) {
	serve := procq.Consumers(n)
	if s.cfg.Consumers.Spawn {
		serve = procq.Processes(n)
	}
	return s.c.Pool(ctx, append([]procq.PoolOption{serve, procq.Stdout(s.childOut)}, opts...)...)
}

// cleanupTimeout bounds a failed command's wait for its pool to stop.
const cleanupTimeout = 30 * time.Second

// finish ends a command's pool: Close (sentinels, then join the
// children) when its work succeeded; Terminate when it failed, so that no
// child waits for a sentinel that will never come.
func (s *session) finish(ctx context.Context, p *procq.Pool, err error) error {
	if err == nil {
		return s.withStoreFacts(s.withLoss(p.Close(ctx)))
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	return errors.Join(s.withStoreFacts(s.withLoss(err)), p.Terminate(cctx))
}

// withLoss puts first, in an error met once the connection was closed
// for good, that the broker was lost and which: what failed (a put, a
// sentinel) says only "connection closed".
func (s *session) withLoss(err error) error {
	lost := link.Closed(s.nc)
	if err == nil || !errors.Is(lost, link.ErrBrokerLost) || errors.Is(err, link.ErrBrokerLost) {
		return err
	}
	return fmt.Errorf("%w; %w", lost, err)
}
