package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/broker"
	"github.com/procq/procq/config"
	"github.com/procq/procq/internal/cli"
	"github.com/procq/procq/producer"
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
	topo     *broker.Topology
	reach    broker.ClientConfig // how children reach the broker
	srv      *broker.Server
	closer   io.Closer
}

func openSession(ctx context.Context, cfg *config.Config) (*session, error) {
	logger, closeLog, err := cli.Logger("producer", "", cfg.Log, os.Stderr)
	if err != nil {
		return nil, err
	}
	s := &session{cfg: cfg, log: logger, closer: closeLog}
	s.nc, s.srv, s.reach, err = broker.Dial(ctx, cfg.ClientConfig("producer"), cfg.Broker.Embedded, cfg.ServerConfig(), logger)
	if err != nil {
		s.close()
		return nil, err
	}
	if s.js, err = jetstream.New(s.nc); err == nil {
		s.topo, err = broker.EnsureQueue(ctx, s.js, cfg.QueueConfig())
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *session) close() {
	if s.nc != nil {
		broker.Close(s.nc)
	}
	if s.srv != nil {
		s.srv.Shutdown()
	}
	_ = s.closer.Close()
}

// spawn starts consumers.count consumer processes named C-1, C-2, ... with
// this session's configuration and broker, or returns nil when
// consumers.spawn is off.
func (s *session) spawn(ctx context.Context, n int) (*producer.Group, error) {
	names := make([]string, n)
	for i := range names {
		names[i] = "C-" + strconv.Itoa(i+1)
	}
	return s.spawnProcs(ctx, nil, names, s.cfg.Consumers.MaxRestarts)
}

// spawnProcs starts one consumer process per name with args (a subcommand
// and its flags), this session's configuration and broker, or returns nil
// when consumers.spawn is off.
func (s *session) spawnProcs(ctx context.Context, args, names []string, restarts int) (*producer.Group, error) {
	if !s.cfg.Consumers.Spawn {
		return nil, nil
	}
	path, err := s.consumerPath()
	if err != nil {
		return nil, err
	}
	env := append(s.cfg.Environ(),
		config.EnvName("broker.url")+"="+s.reach.URL,
		config.EnvName("broker.token")+"="+s.reach.Token,
	)
	if s.cfg.File != "" {
		args = append([]string{"--config", s.cfg.File}, args...)
	}
	return producer.Spawn(ctx, producer.SpawnConfig{
		Path:        path,
		Args:        args,
		Env:         env,
		Names:       names,
		MaxRestarts: restarts,
		Stdout:      s.childOut,
	}, s.log)
}

// consumerPath is consumers.path, or the consumer executable beside this one.
func (s *session) consumerPath() (string, error) {
	if p := s.cfg.Consumers.Path; p != "" {
		return p, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find consumer executable: %w", err)
	}
	return filepath.Join(filepath.Dir(self), "consumer"), nil
}

// join waits for the spawned children, if any, and reports which failed.
func join(g *producer.Group, err error) error {
	if g == nil {
		return err
	}
	return errors.Join(err, g.Wait())
}

// withWorkers runs fn as one run of the queue served by n consumer
// processes: it opens the run, spawns the consumers (when consumers.spawn)
// and waits until they are idle and connected, runs fn, then puts one
// sentinel per consumer and joins the children, like the seed's main
// process does.
func (s *session) withWorkers(ctx context.Context, n int, fn func(ctx context.Context, q *producer.Queue, run string, g *producer.Group) error) error {
	q := producer.NewQueue(s.cfg.Queue.Name, s.js, s.topo, s.log)
	run, err := q.Begin(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	group, err := s.spawn(ctx, n)
	if err != nil {
		return err
	}
	if group != nil {
		// An idle consumer process keeps one pull request waiting.
		err = q.WaitReady(ctx, n, s.cfg.Broker.ConnectTimeout)
	}
	if err == nil {
		err = fn(ctx, q, run, group)
	}
	if err == nil {
		err = q.End(ctx, run, n)
	}
	if err != nil {
		cancel() // stop the children rather than wait for sentinels never sent
	}
	return join(group, err)
}
