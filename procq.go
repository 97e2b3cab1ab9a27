// Package procq is the Go client of procq: Python's multiprocessing Pool,
// Queue and Pipe, as separate OS processes that exchange work through NATS
// JetStream.
//
// Connect reaches the broker with the configuration the executables use
// (config.yaml, PROCQ_* variables, options) and hands out the pieces:
//
//	c, err := procq.Connect(ctx)
//	pool, err := c.Pool(ctx, procq.Processes(4)) // four consumer processes
//	squares, err := procq.Map[demo.SquareArgs, int64](ctx, pool, "square", args)
//	err = pool.Close(ctx)
//
// Task kinds are registered on the consumer side with task.Register (typed)
// and served by bin/consumer or a consumer of your own (consumer/app).
package procq

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/config"
	"github.com/procq/procq/internal/wire"
	"github.com/procq/procq/link"
	"github.com/procq/procq/msgq"
	"github.com/procq/procq/pipe"
	"github.com/procq/procq/producer"
	"github.com/procq/procq/protocol"
)

// Client is a connection to a procq broker, with the configured queue's
// topology declared.
type Client struct {
	cfg  *config.Config
	nc   *nats.Conn
	js   jetstream.JetStream
	topo *protocol.Topology
	q    *producer.Queue
	log  *slog.Logger
}

// Option configures Connect.
type Option func(*options)

type options struct {
	path   string
	cfg    *config.Config
	url    string
	token  string
	queue  string
	name   string
	logger *slog.Logger
}

// WithConfigFile reads the configuration from path, as the executables'
// --config does; the PROCQ_* environment variables still override it.
// Without it, Connect reads config.yaml when there is one.
func WithConfigFile(path string) Option { return func(o *options) { o.path = path } }

// WithConfig uses cfg (from config.Load) instead of reading one.
func WithConfig(cfg *config.Config) Option { return func(o *options) { o.cfg = cfg } }

// WithURL sets broker.url: one URL, or several comma-separated.
func WithURL(url string) Option { return func(o *options) { o.url = url } }

// WithToken sets broker.token, the client token.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithQueue sets queue.name, the queue the client's pools put tasks on.
func WithQueue(name string) Option { return func(o *options) { o.queue = name } }

// WithName names the connection in the broker's view. Defaults to
// "procq client <pid>".
func WithName(name string) Option { return func(o *options) { o.name = name } }

// WithLogger logs the client's events to l. Defaults to discarding them.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Connect connects to the broker, waiting for it up to
// broker.connect_timeout, and declares the queue's streams and buckets.
// A bad configuration value is a *config.Error naming the key.
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
	nc, js, err := wire.Connect(ctx, &c, o.name, logger)
	if err != nil {
		return nil, err
	}
	topo, err := wire.EnsureQueue(ctx, js, &c, logger)
	if err != nil {
		link.Close(nc)
		return nil, err
	}
	q := producer.NewQueue(c.Queue.Name, js, topo, logger)
	q.PutTimeout = c.Queue.PutTimeout
	return &Client{cfg: &c, nc: nc, js: js, topo: topo, q: q, log: logger}, nil
}

// Close closes the connection. Close pools, queues and pipes first.
func (c *Client) Close() { link.Close(c.nc) }

// Config is the configuration the client runs with.
func (c *Client) Config() *config.Config { return c.cfg }

// JetStream is the client's JetStream context, for what procq does not
// wrap.
func (c *Client) JetStream() jetstream.JetStream { return c.js }

// Tasks is the client's task queue, for the run protocol (producer.Begin)
// and single puts.
func (c *Client) Tasks() *producer.Queue { return c.q }

// PoolOption configures Client.Pool.
type PoolOption func(*poolOptions)

type poolOptions struct {
	processes int
	chunk     int
	window    int
}

// Processes starts n consumer processes (consumers.path, by default the
// consumer beside this executable) for the pool's life, like Python's
// Pool(n): Close gives each its sentinel and waits for them. Without it
// the pool uses the consumers of the queue that are already running.
func Processes(n int) PoolOption { return func(o *poolOptions) { o.processes = n } }

// ChunkSize sets pool.chunk_size, the inputs per task message (0:
// automatic for Map, 1 for the streaming forms).
func ChunkSize(n int) PoolOption { return func(o *poolOptions) { o.chunk = n } }

// Window sets pool.window, the task messages in flight at most.
func Window(n int) PoolOption { return func(o *poolOptions) { o.window = n } }

// Pool is a producer.Pool (Map, Imap, ImapUnordered, Apply, ApplyAsync on
// raw JSON; the typed forms are this package's functions) that may own the
// consumer processes serving it.
type Pool struct {
	*producer.Pool
	run         *producer.Run
	stopSpawned context.CancelFunc
}

// Pool returns a pool that maps over the client's queue. With Processes it
// starts its consumers and waits until they pull; otherwise it maps over
// consumers started by hand, and a map fails with producer.ErrNoConsumers
// once none has been present for pool.idle_timeout.
func (c *Client) Pool(ctx context.Context, opts ...PoolOption) (*Pool, error) {
	o := poolOptions{chunk: c.cfg.Pool.ChunkSize, window: c.cfg.Pool.Window}
	for _, opt := range opts {
		opt(&o)
	}
	if o.processes < 0 || o.chunk < 0 || o.window < 0 {
		return nil, errors.New("procq: pool options must not be negative")
	}
	workers := o.processes
	if workers == 0 {
		workers = c.cfg.Consumers.Count
	}
	p := &Pool{stopSpawned: func() {}}
	pc := producer.PoolConfig{ChunkSize: o.chunk, Workers: workers, Window: o.window}
	if o.processes == 0 {
		// Each map, while it runs, fails once no consumer has been seen for
		// pool.idle_timeout; an idle pool waits for consumers as long as it
		// likes.
		idle := c.cfg.Pool.IdleTimeout
		pc.Watch = func(ctx context.Context) (context.Context, func()) { return c.q.Watch(ctx, nil, idle, idle/10) }
		p.Pool = producer.NewPool(c.q, pc)
		return p, nil
	}
	// The children reach the broker as this client does, with the token it
	// used (perhaps read from the broker's token file).
	sc, err := wire.SpawnConfig(c.cfg, link.Config{URL: c.cfg.Broker.URL, Token: c.nc.Opts.Token}, nil,
		wire.ConsumerNames(o.processes), c.cfg.Consumers.MaxRestarts)
	if err != nil {
		return nil, err
	}
	sc.Stdout = io.Discard // the children's demo lines; their logs go to their files
	r, err := producer.Begin(ctx, c.q, producer.RunConfig{Consumers: o.processes, Spawn: sc,
		ReadyTimeout: c.cfg.Broker.ConnectTimeout, IdleTimeout: c.cfg.Pool.IdleTimeout})
	if err != nil {
		return nil, err
	}
	// The children live as long as the pool, not as the ctx of this call.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if err := r.Spawn(sctx); err != nil {
		cancel()
		return nil, errors.Join(err, r.Join(context.WithoutCancel(ctx)))
	}
	pc.Watch, pc.Run = r.Watch, r.ID()
	p.Pool, p.run, p.stopSpawned = producer.NewPool(c.q, pc), r, cancel
	return p, nil
}

// Close lets the pool's submitted work finish, like Python's Pool.close
// then join; when the pool started its consumers, it then gives each its
// sentinel and waits for them to exit.
func (p *Pool) Close(ctx context.Context) error {
	err := p.Pool.Close(ctx)
	if p.run != nil {
		err = errors.Join(err, p.run.End(ctx), p.run.Join(ctx))
	}
	p.stopSpawned()
	return err
}

// Terminate stops the pool's maps at once and removes their queued tasks,
// like Python's Pool.terminate; the consumers the pool started are
// stopped (SIGTERM).
func (p *Pool) Terminate(ctx context.Context) error {
	err := p.Pool.Terminate(ctx)
	p.stopSpawned()
	if p.run != nil && p.run.Group() != nil {
		err = errors.Join(err, p.run.Group().Wait())
	}
	return err
}

// Queue opens the named message queue, like multiprocessing.Queue: any
// JSON value, durable, each item to one getter, first in first out.
// maxsize > 0 bounds it: Put then waits for room.
func (c *Client) Queue(ctx context.Context, name string, maxsize int) (*msgq.Queue, error) {
	return wire.OpenMsgQueue(ctx, c.js, c.cfg, name, maxsize, c.log)
}

// Pipe opens end a or b of the named pipe, like one end of
// multiprocessing.Pipe: it waits up to pipe.peer_timeout for the other
// end's process.
func (c *Client) Pipe(ctx context.Context, name string, end pipe.End) (*pipe.Conn, error) {
	return pipe.Open(ctx, c.js, name, end, wire.PipeConfig(c.cfg), c.log)
}
