package procq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/config"
	"github.com/procq/procq/link"
	"github.com/procq/procq/msgq"
	"github.com/procq/procq/ops/endpoint"
	"github.com/procq/procq/pipe"
	"github.com/procq/procq/producer"
	"github.com/procq/procq/protocol"
)

// Client is a connection to a procq broker with the configuration it
// runs by: the one front door to both sides, the producer's (Pool, Queue,
// Pipe, Process) and the consumer's (Worker).
type Client struct {
	cfg     *config.Config
	nc      *nats.Conn
	ownConn bool // Close closes nc: Connect opened it
	js      jetstream.JetStream
	log     *slog.Logger

	mu   sync.Mutex
	topo *protocol.Topology // the queue's, once declared
	q    *producer.TaskQueue
}

// Option configures Connect.
type Option func(*options)

type options struct {
	path   string
	cfg    *config.Config
	nc     *nats.Conn
	url    string
	token  string
	queue  string
	name   string
	role   string
	logger *slog.Logger
}

// WithConfigFile reads the configuration from path, as the executables'
// --config does; the PROCQ_* environment variables still override it.
// Without it (and without WithConfig), Connect reads ./config.yaml when
// there is one.
func WithConfigFile(path string) Option { return func(o *options) { o.path = path } }

// WithConfig uses cfg (from config.Load) instead of reading one: no file
// and no environment is read.
func WithConfig(cfg *config.Config) Option { return func(o *options) { o.cfg = cfg } }

// WithConn uses nc, a connection of the caller's, instead of opening one;
// Close leaves it open. Children the client starts reach the broker at
// broker.url with nc's token.
func WithConn(nc *nats.Conn) Option { return func(o *options) { o.nc = nc } }

// WithURL sets broker.url: one URL, or several comma-separated.
func WithURL(url string) Option { return func(o *options) { o.url = url } }

// WithToken sets broker.token, the client token.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithQueue sets queue.name, the queue the client's pools and workers use.
func WithQueue(name string) Option { return func(o *options) { o.queue = name } }

// WithName names the connection in the broker's view. Defaults to
// "procq client <pid>".
func WithName(name string) Option { return func(o *options) { o.name = name } }

// WithRole connects in role (protocol.RoleProducer, protocol.RoleConsumer)
// on procq's own broker: with that role's credential from
// broker.credentials_dir, allowed only that role's work. Without it (or
// where the broker issues no role credentials) the client presents the
// token, the admin's credential.
func WithRole(role string) Option { return func(o *options) { o.role = role } }

// WithLogger logs the client's events to l. Defaults to discarding them.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Connect connects to the broker, waiting for it up to
// broker.connect_timeout. A bad configuration value is a *config.Error
// naming the key. The queue's streams and buckets are declared when a
// Pool or a Worker first needs them.
func Connect(ctx context.Context, opts ...Option) (*Client, error) {
	o := options{name: "procq client " + strconv.Itoa(os.Getpid())}
	for _, opt := range opts {
		opt(&o)
	}
	cfg := o.cfg
	if cfg == nil {
		var err error
		if cfg, err = config.Load(config.Options{Path: o.path}); err != nil {
			return nil, err
		}
	}
	c := *cfg // the caller's stays as it is
	if o.url != "" {
		c.Broker.URL = o.url
	}
	if o.token != "" {
		c.Broker.Token = o.token
	}
	if o.queue != "" {
		c.Queue.Name = o.queue
	}
	logger := o.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	nc, own := o.nc, false
	if nc == nil {
		var err error
		if nc, err = link.Connect(ctx, c.Broker.Client(o.role, c.Queue.Name, o.name), logger); err != nil {
			return nil, err
		}
		own = true
	}
	js, err := jetstream.New(nc)
	if err != nil {
		if own {
			link.Close(nc)
		}
		return nil, err
	}
	return &Client{cfg: &c, nc: nc, ownConn: own, js: js, log: logger}, nil
}

// Close closes the connection, unless it was the caller's (WithConn).
// Close pools, workers, queues and pipes first.
func (c *Client) Close() {
	if c.ownConn {
		link.Close(c.nc)
	}
}

// Config is the configuration the client runs with.
func (c *Client) Config() *config.Config { return c.cfg }

// JetStream is the client's JetStream context, for what procq does not
// wrap.
func (c *Client) JetStream() jetstream.JetStream { return c.js }

// topology declares the queue's streams, consumer and buckets once; a
// failure is tried again by the next caller.
func (c *Client) topology(ctx context.Context) (*protocol.Topology, *producer.TaskQueue, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.topo != nil {
		return c.topo, c.q, nil
	}
	var topo *protocol.Topology
	var err error
	if c.mayDeclare() {
		qc := c.cfg.QueueShape()
		qc.Logger = c.log
		topo, err = link.Retry(ctx, c.cfg.Broker.ConnectTimeout, c.log, func(ctx context.Context) (*protocol.Topology, error) {
			return protocol.EnsureQueue(ctx, c.js, qc)
		})
	} else {
		topo, err = c.lookupQueue(ctx)
	}
	if err != nil {
		return nil, nil, replicasErr(c.cfg, err)
	}
	c.q = producer.NewTaskQueue(c.cfg.Queue.Name, c.js, topo, c.log)
	c.q.PutTimeout = c.cfg.Queue.PutTimeout
	c.topo = topo
	return c.topo, c.q, nil
}

// endpointToken is what the client's HTTP endpoints (a worker's metrics)
// require: the token it connected with; with another credential, the
// broker's token where this host has its token file; else the client's
// own password (a worker host that holds only its role's credential).
func (c *Client) endpointToken() string {
	if t := c.nc.Opts.Token; t != "" {
		return t
	}
	if t, err := link.ReadToken(c.cfg.Broker.TokenPath()); err == nil {
		return t
	}
	return c.nc.Opts.Password
}

// endpointTLS is what the client's HTTP endpoints serve HTTPS with:
// broker.tls's certificate, when one is set.
func (c *Client) endpointTLS() endpoint.TLSFiles {
	return endpoint.TLSFiles{Cert: c.cfg.Broker.TLS.Cert, Key: c.cfg.Broker.TLS.Key}
}

// mayDeclare says whether the client may declare the queue's streams: all
// but a consumer that connected with its role's credential, which may
// only use them.
func (c *Client) mayDeclare() bool {
	return c.nc.Opts.User != protocol.RoleUser(protocol.RoleConsumer, c.cfg.Queue.Name)
}

// lookupQueue waits, up to broker.connect_timeout, until the queue's
// streams are declared (by the broker, or a producer).
func (c *Client) lookupQueue(ctx context.Context) (*protocol.Topology, error) {
	timeout := c.cfg.Broker.ConnectTimeout
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for logged := false; ; logged = true {
		topo, err := protocol.LookupQueue(ctx, c.js, c.cfg.Queue.Name)
		if !errors.Is(err, protocol.ErrNoTopology) {
			return topo, err
		}
		if !logged {
			c.log.WarnContext(ctx, "waiting for the queue's streams", "queue", c.cfg.Queue.Name,
				"waiting_for", "the broker or a producer to declare them", "timeout", timeout, "error", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("queue %s: %w within broker.connect_timeout (%v): start a producer, or the broker", c.cfg.Queue.Name, err, timeout)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Queue opens the named message queue, like multiprocessing.Queue: any
// JSON value, durable, each item to one getter, first in first out.
// maxsize > 0 bounds it: Put then waits for room.
func (c *Client) Queue(ctx context.Context, name string, maxsize int) (*msgq.Queue, error) {
	q, err := msgq.Open(ctx, c.js, name, msgq.Config{MaxSize: maxsize, PutTimeout: c.cfg.Queue.PutTimeout, Replicas: c.cfg.Queue.Replicas,
		UseAsIs: !c.mayDeclare()}, c.log)
	return q, replicasErr(c.cfg, err)
}

// Pipe opens end a or b of the named pipe, like one end of
// multiprocessing.Pipe: it waits up to pipe.peer_timeout for the other
// end's process.
func (c *Client) Pipe(ctx context.Context, name string, end pipe.End) (*pipe.Conn, error) {
	conn, err := pipe.Open(ctx, c.js, name, end, pipe.Config{PeerTimeout: c.cfg.Pipe.PeerTimeout, Replicas: c.cfg.Queue.Replicas}, c.log)
	return conn, replicasErr(c.cfg, err)
}

// replicasErr names queue.replicas in an error that says the broker
// cannot place the configured replica count.
func replicasErr(c *config.Config, err error) error {
	if errors.Is(err, link.ErrReplicas) {
		return c.ErrorFor("queue.replicas", err)
	}
	return err
}

// ErrBrokerLost says the client's connection to the broker is closed for
// good: the broker was unreachable for longer than broker.connect_timeout.
// A map running then fails with an *IncompleteError matching it (the
// error names the broker), as a worker's Run does; bin/producer and
// bin/consumer exit 1.
var ErrBrokerLost = link.ErrBrokerLost

// ErrBadOption is a value out of bounds given to an option (Processes,
// Consumers, ChunkSize, Window): the same bounds config enforces on the
// keys the executables read.
var ErrBadOption = errors.New("procq: bad option")

// inBounds checks an option's value against its bounds.
func inBounds(option string, got, lo, hi int) error {
	if got < lo || got > hi {
		return fmt.Errorf("%w: %s(%d): want %d to %d", ErrBadOption, option, got, lo, hi)
	}
	return nil
}
