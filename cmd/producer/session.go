package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/broker"
	"github.com/procq/procq/config"
	"github.com/procq/procq/internal/cli"
	"github.com/procq/procq/internal/serve"
	"github.com/procq/procq/internal/wire"
	"github.com/procq/procq/link"
	"github.com/procq/procq/producer"
	"github.com/procq/procq/protocol"
)

// session is what every producer subcommand sets up: config, log, a broker
// connection (hosting the broker when configured and none runs) and the
// queue's topology.
type session struct {
	cfg *config.Config
	// childOut receives the spawned consumers' stdout; nil means ours.
	childOut io.Writer
	log      *slog.Logger
	nc       *nats.Conn
	js       jetstream.JetStream
	topo     *protocol.Topology
	reach    link.Config // how children reach the broker
	srv      *broker.Server
	closer   io.Closer
	// stopEndpoints stops the embedded broker's metrics, monitoring and
	// dashboard.
	stopEndpoints context.CancelFunc
}

func openSession(ctx context.Context, cfg *config.Config) (*session, error) {
	logger, closeLog, err := cli.Logger("producer", "", cfg.Log, os.Stderr)
	if err != nil {
		return nil, err
	}
	s := &session{cfg: cfg, log: logger, closer: closeLog}
	s.nc, s.srv, s.reach, err = broker.Dial(ctx, wire.ClientConfig(cfg, "producer"), cfg.Broker.Embedded, serve.ServerConfig(cfg), logger)
	if err != nil {
		s.close()
		return nil, err
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
	if s.js, err = jetstream.New(s.nc); err == nil {
		s.topo, err = wire.EnsureQueue(ctx, s.js, cfg, logger)
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *session) close() {
	if s.stopEndpoints != nil {
		s.stopEndpoints()
	}
	if s.nc != nil {
		link.Close(s.nc)
	}
	if s.srv != nil {
		s.srv.Shutdown()
	}
	_ = s.closer.Close()
}

// spawnConfig says how this session starts consumer processes named
// names with args (a subcommand and its flags), its configuration and its
// broker; nil when consumers.spawn is off.
func (s *session) spawnConfig(args, names []string, restarts int) (*producer.SpawnConfig, error) {
	if !s.cfg.Consumers.Spawn {
		return nil, nil
	}
	sc, err := wire.SpawnConfig(s.cfg, s.reach, args, names, restarts)
	if sc != nil {
		sc.Stdout = s.childOut
	}
	return sc, err
}

// spawnProcs starts one consumer process per name, not bound to a run
// (the pipe receiver), or returns nil when consumers.spawn is off.
func (s *session) spawnProcs(ctx context.Context, args, names []string, restarts int) (*producer.Group, error) {
	sc, err := s.spawnConfig(args, names, restarts)
	if sc == nil || err != nil {
		return nil, err
	}
	return producer.Spawn(ctx, *sc, s.log)
}

// join waits for the spawned children, if any, and reports which failed.
func join(g *producer.Group, err error) error {
	if g == nil {
		return err
	}
	return errors.Join(err, g.Wait())
}

// withWorkers runs fn as one run of the queue served by n consumers (see
// producer.Run): it begins the run, spawns the consumers (when
// consumers.spawn) and waits until they pull, runs fn with a context that
// ends when no consumer is left, then puts one sentinel per consumer and
// joins the children, like the seed's main process does.
func (s *session) withWorkers(ctx context.Context, n int, fn func(ctx context.Context, r *producer.Run) error) error {
	q := producer.NewQueue(s.cfg.Queue.Name, s.js, s.topo, s.log)
	q.PutTimeout = s.cfg.Queue.PutTimeout
	sc, err := s.spawnConfig(nil, wire.ConsumerNames(n), s.cfg.Consumers.MaxRestarts)
	if err != nil {
		return err
	}
	r, err := producer.Begin(ctx, q, producer.RunConfig{
		Consumers:    n,
		Spawn:        sc,
		ReadyTimeout: s.cfg.Broker.ConnectTimeout,
		IdleTimeout:  s.cfg.Pool.IdleTimeout,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err = r.Spawn(ctx)
	if err == nil {
		wctx, stop := r.Watch(ctx)
		err = fn(wctx, r)
		stop()
	}
	if err == nil {
		err = r.End(ctx)
	}
	if err != nil {
		cancel() // stop the children rather than wait for sentinels never sent
	}
	return errors.Join(s.withStoreFacts(err), r.Join(ctx))
}
