package procq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nuid"
	"github.com/procq/procq/config"
	"github.com/procq/procq/producer"
	"github.com/procq/procq/protocol"
)

// PoolOption configures Client.Pool.
type PoolOption func(*poolOptions)

type poolOptions struct {
	processes int
	consumers int
	chunk     int
	window    int
	label     string
	stdout    io.Writer
	startAt   time.Time
	deadline  time.Time
	priority  Level
}

// Processes starts n consumer processes (consumers.path, by default the
// consumer beside this executable) for the pool's life, like Python's
// Pool(n): Close gives each its sentinel and waits for them. A child that
// dies is replaced (consumers.max_restarts) and what it held is handed
// back at once.
func Processes(n int) PoolOption { return func(o *poolOptions) { o.processes = n } }

// Consumers makes the pool a run served by n consumers started by hand
// (bin/consumer in other terminals or on other machines): Close gives each
// its sentinel, so that they exit once the pool's work is done. Without
// Processes or Consumers the pool uses whatever consumers of the queue
// run, and Close leaves them running.
func Consumers(n int) PoolOption { return func(o *poolOptions) { o.consumers = n } }

// ChunkSize sets pool.chunk_size, the inputs per task message (0:
// automatic for Map, 1 for the streaming forms).
func ChunkSize(n int) PoolOption { return func(o *poolOptions) { o.chunk = n } }

// Window sets pool.window, the task messages in flight at most.
func Window(n int) PoolOption { return func(o *poolOptions) { o.window = n } }

// Label names each task message of the pool's maps "<label>-<n>" (the
// Procq-Label header): a consumer prints its start and finish lines with
// its PID, as the Process demo shows.
func Label(label string) PoolOption { return func(o *poolOptions) { o.label = label } }

// Stdout receives the standard output of the consumer processes the pool
// starts (their demo lines; their logs go to their files). Defaults to
// io.Discard.
func Stdout(w io.Writer) PoolOption { return func(o *poolOptions) { o.stdout = w } }

// StartAt holds back the tasks of the pool's maps until t (producer pool
// --in/--at): a map started earlier takes its lease and watches its
// consumers at once, and submits its first task at t.
func StartAt(t time.Time) PoolOption { return func(o *poolOptions) { o.startAt = t } }

// MapDeadline gives every task of the pool's maps a deadline (producer
// pool --deadline): a task taken later is not run, its inputs fail with an
// error errors.Is ErrDeadline, and it is dead-lettered.
func MapDeadline(t time.Time) PoolOption { return func(o *poolOptions) { o.deadline = t } }

func (o poolOptions) validate() error {
	return errors.Join(
		inBounds("Processes", o.processes, 0, protocol.MaxProcesses),
		inBounds("Consumers", o.consumers, 0, protocol.MaxProcesses),
		inBounds("ChunkSize", o.chunk, 0, protocol.MaxChunkSize),
		inBounds("Window", o.window, 1, protocol.MaxWindow),
		o.priority.Validate(),
	)
}

// Pool maps task kinds over inputs across the consumers of the client's
// queue, like Python's multiprocessing.Pool. The typed Map, Imap,
// ImapUnordered, Starmap, Apply, ApplyAsync and MapAsync of this package
// take it.
type Pool struct {
	inner *producer.Pool
	q     *producer.TaskQueue
	run   *producer.Run // nil without Processes or Consumers
	runID string        // the run of Submit's tasks

	stop     context.CancelFunc // stops the run's children
	release  chan struct{}      // closed by Close: the run's work is done
	once     sync.Once
	done     chan struct{} // closed when the run has ended
	err      error         // the run's end, once done
	mu       sync.Mutex
	submits  int          // Submit's index
	unput    map[int]bool // Submit's indexes never stored (no such task to cancel)
	answer   func()       // stops answering cancels of Submit's tasks; nil before the first
	priority Level        // MapPriority's
}

// Pool returns a pool that maps over the client's queue. With Processes
// it starts its consumers and waits until they pull; with Consumers it
// maps over consumers started by hand and ends their run at Close;
// otherwise it maps over whatever consumers of the queue run. Either way a
// map fails with producer.ErrNoConsumers once no consumer is left (for
// consumers started by hand: none has been present for
// pool.idle_timeout).
func (c *Client) Pool(ctx context.Context, opts ...PoolOption) (*Pool, error) {
	o := poolOptions{chunk: c.cfg.Pool.ChunkSize, window: c.cfg.Pool.Window, stdout: io.Discard}
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	_, q, err := c.topology(ctx)
	if err != nil {
		return nil, err
	}
	n := max(o.processes, o.consumers)
	workers := n
	if workers == 0 {
		workers = c.cfg.Consumers.Count
	}
	pc := producer.PoolConfig{ChunkSize: o.chunk, Workers: workers, Window: o.window, Label: o.label, StartAt: o.startAt,
		Deadline: o.deadline, Priority: o.priority}
	if n == 0 {
		// Each map, while it runs, fails once no consumer has been seen for
		// pool.idle_timeout; an idle pool waits for consumers as long as it
		// likes.
		pc.IdleTimeout = c.cfg.Pool.IdleTimeout
		return &Pool{inner: producer.NewPool(q, pc), q: q, runID: nuid.Next(), priority: o.priority}, nil
	}
	rc := producer.RunConfig{Consumers: n, ReadyTimeout: c.cfg.Broker.ConnectTimeout, IdleTimeout: c.cfg.Pool.IdleTimeout}
	if o.processes > 0 {
		if rc.Spawn, err = c.spawnConfig(nil, consumerNames(n)); err != nil {
			return nil, err
		}
		rc.Spawn.Stdout = o.stdout
	}
	r, err := producer.Begin(ctx, q, rc)
	if err != nil {
		return nil, err
	}
	pc.Run = r
	p := &Pool{inner: producer.NewPool(q, pc), q: q, run: r, runID: r.ID(), release: make(chan struct{}), done: make(chan struct{}),
		priority: o.priority}
	// The run lives as long as the pool, not as the ctx of this call.
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	p.stop = stop
	started := make(chan struct{})
	go func() {
		defer close(p.done)
		p.err = r.Do(rctx, func(wctx context.Context) error {
			close(started)
			select {
			case <-p.release:
				return nil
			case <-wctx.Done():
				return context.Cause(wctx)
			}
		})
	}()
	select {
	case <-started:
		return p, nil
	case <-p.done: // the consumers did not start
		stop()
		return nil, p.err
	case <-ctx.Done():
		stop()
		<-p.done
		return nil, context.Cause(ctx)
	}
}

// Close lets the pool's submitted work finish, like Python's Pool.close
// then join; when the pool is a run (Processes, Consumers), it then gives
// each consumer its sentinel and, for the processes it started, waits for
// them to exit. When ctx ends first, the processes are stopped.
func (p *Pool) Close(ctx context.Context) error {
	p.stopAnswering()
	err := p.inner.Close(ctx)
	if p.run == nil {
		return err
	}
	p.once.Do(func() { close(p.release) })
	select {
	case <-p.done:
	case <-ctx.Done():
		p.stop()
		<-p.done
	}
	p.stop()
	return errors.Join(err, p.err)
}

// Terminate stops the pool's maps at once and removes their queued tasks,
// like Python's Pool.terminate; the consumers the pool started are
// stopped (SIGTERM) without waiting for their sentinels.
func (p *Pool) Terminate(ctx context.Context) error {
	p.stopAnswering()
	err := p.inner.Terminate(ctx)
	if p.run == nil {
		return err
	}
	p.stop()
	<-p.done
	if g := p.run.Group(); g != nil {
		err = errors.Join(err, g.Wait())
	}
	return err
}

func (p *Pool) stopAnswering() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.answer != nil {
		p.answer()
	}
}

// Submit puts one task of kind on the pool's queue, to be run by one of
// its consumers and answered to nobody, like the Queue demo's messages: a
// run's sentinels wait for it. It returns once the broker has stored it
// (waiting up to queue.put_timeout for room in a full queue).
//
// With In or At the task is delayed: the broker holds it until then, and
// the run's sentinels wait for it too; the handle's Cancel removes it
// before it fires. With Priority it goes on its level: consumers take it
// before any task of a lower level, and the run's sentinels wait for every
// level. With Unique it is refused (ErrDuplicate) while another task of
// the queue holds the key.
func (p *Pool) Submit(ctx context.Context, kind string, arg any, opts ...TaskOption) (*Task, error) {
	p.mu.Lock()
	i := p.submits
	p.submits++
	if p.answer == nil {
		// "broker task cancel <run>.<index>" reaches this pool.
		stop, err := p.q.AnswerCancels(context.WithoutCancel(ctx), p.runID, func(index int) bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return index < p.submits && !p.unput[index]
		})
		if err != nil {
			p.mu.Unlock()
			return nil, fmt.Errorf("submit %s: %w", kind, err)
		}
		p.answer = stop
	}
	p.mu.Unlock()
	unput := func(err error) (*Task, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.unput == nil {
			p.unput = map[int]bool{}
		}
		p.unput[i] = true
		return nil, err
	}
	o := taskOpts(opts)
	if err := o.Validate(); err != nil {
		return unput(fmt.Errorf("submit %s: %w", kind, err))
	}
	id := protocol.TaskID(p.runID, i)
	mark := func(ctx context.Context) error { return p.q.MarkCancelled(ctx, id) }
	if o.Plain() {
		if err := p.q.Put(ctx, p.runID, i, kind, arg); err != nil {
			return unput(err)
		}
		return &Task{id: id, cancel: mark}, nil
	}
	d, err := p.q.PutWith(ctx, p.runID, i, kind, arg, o)
	if err != nil {
		return unput(err)
	}
	if d == nil {
		return &Task{id: id, cancel: mark}, nil
	}
	return &Task{d: d, id: id, cancel: func(ctx context.Context) error {
		if err := p.q.Cancel(ctx, d); err != nil {
			return err
		}
		return p.q.ReleaseUnique(ctx, o.Unique, d.ID) // removed: it holds its unique key no longer
	}}, nil
}

// PIDs returns the current process id of each consumer process the pool
// started, by name (C-1, C-2, ...); nil when it started none.
func (p *Pool) PIDs() map[string]int {
	if p.run == nil || p.run.Group() == nil {
		return nil
	}
	return p.run.Group().PIDs()
}

// spawnConfig says how to start consumer processes named names with args
// under the client's configuration, reaching its broker: broker.url with
// the token the client connected with (perhaps read from the broker's
// token file, or an embedded broker's). The path is consumers.path, or
// the consumer executable beside this one.
func (c *Client) spawnConfig(args, names []string) (*producer.SpawnConfig, error) {
	cfg := c.cfg
	path := cfg.Consumers.Path
	if path == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find consumer executable: %w", err)
		}
		path = filepath.Join(filepath.Dir(self), "consumer")
	}
	// What may differ from the loaded values; a later variable wins.
	env := append(cfg.Environ(),
		config.EnvName("queue.name")+"="+cfg.Queue.Name,
		config.EnvName("broker.url")+"="+cfg.Broker.URL)
	if token := c.nc.Opts.Token; token != "" {
		env = append(env, config.EnvName("broker.token")+"="+token)
	}
	if cfg.File != "" {
		args = append([]string{protocol.ArgConfig, cfg.File}, args...)
	}
	sc := &producer.SpawnConfig{Path: path, Args: args, Env: env, Names: names,
		MaxRestarts: cfg.Consumers.MaxRestarts, Stdout: io.Discard}
	if host, port, err := net.SplitHostPort(cfg.Metrics.Listen); err == nil {
		if p, err := strconv.Atoi(port); err == nil && p > 0 {
			// One metrics port each, consecutive: 9464, 9465, ...
			sc.ChildEnv = func(i int) []string {
				return []string{config.EnvName("metrics.listen") + "=" + net.JoinHostPort(host, strconv.Itoa(p+i))}
			}
		}
	}
	return sc, nil
}

// consumerNames are C-1, C-2, ... C-n.
func consumerNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = "C-" + strconv.Itoa(i+1)
	}
	return names
}
