package producer

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nuid"
	"github.com/procq/procq/link"
	"github.com/procq/procq/protocol"
	"golang.org/x/sync/semaphore"
)

// PoolConfig configures a Pool.
type PoolConfig struct {
	// ChunkSize is how many inputs travel in one task message. 0 picks one:
	// for Map, like Python's Pool.map, len(inputs)/(4*Workers) rounded up
	// (at most protocol.MaxAutoChunk); for the streaming forms, 1.
	ChunkSize int
	// Workers is how many consumer processes serve the pool; it only sizes
	// the automatic chunk. Defaults to 1.
	Workers int
	// Window caps the task messages in flight: published but not yet
	// answered (unordered) or not yet yielded (ordered). It bounds memory
	// for any number of inputs. Defaults to protocol.DefaultWindow.
	Window int
	// Run, when set, is the run the pool's maps belong to: their tasks go
	// on the run's subjects, so the run's sentinels wait for them, and
	// each map fails once the run has no consumer left (Run.Watch).
	Run *Run
	// IdleTimeout, without a Run, makes each map fail with ErrNoConsumers
	// once no consumer of the queue has been present for this long
	// (consumers started by hand). 0, without a Run, watches nothing.
	IdleTimeout time.Duration
	// Label, when set, names each task message "<Label>-<n>" (n from 1) in
	// a Procq-Label header: the consumer prints its start and finish lines
	// with its PID, as the Process demo shows.
	Label string
	// StartAt, when set, holds back the first task of each map until
	// then (producer pool --in/--at): the map's lease and its consumer
	// watch run meanwhile, and its tasks are stored only when it starts.
	StartAt time.Time
	// Deadline, when set, is every task's deadline: one taken later is not
	// run; its inputs fail with ErrDeadline and it is dead-lettered.
	Deadline time.Time
	// Priority is every task's level (protocol.LevelSubject): a consumer
	// takes a higher level's task first whenever one is waiting. Zero:
	// the default level. A map of an unknown level fails at once.
	Priority protocol.Priority
}

func (c PoolConfig) withDefaults() PoolConfig {
	c.Workers = cmp.Or(c.Workers, 1)
	c.Window = cmp.Or(c.Window, protocol.DefaultWindow)
	return c
}

// AutoChunk is the chunk size Map uses for n inputs on workers processes.
func AutoChunk(n, workers int) int {
	if n <= 0 {
		return 1
	}
	per := max(workers, 1) * 4
	return min(max((n+per-1)/per, 1), protocol.MaxAutoChunk)
}

// Pool maps task kinds over inputs across the consumer processes of one
// queue, like Python's multiprocessing.Pool, with results travelling back
// through JetStream.
type Pool struct {
	q   *TaskQueue
	cfg PoolConfig
	log *slog.Logger

	ctx       context.Context // ends on Terminate: every map stops
	terminate context.CancelFunc
	closing   chan struct{} // closed by Close and Terminate
	running   sync.WaitGroup
	maps      sync.Map // the maps running, by id (CancelTask)

	mu       sync.Mutex
	closed   bool
	sessions map[string]*applySession // Apply's, by kind
}

// NewPool returns a pool that puts its tasks on q. Close or Terminate it
// when done with it: Apply keeps a map open per kind until then.
func NewPool(q *TaskQueue, cfg PoolConfig) *Pool {
	ctx, cancel := context.WithCancel(context.Background())
	return &Pool{q: q, cfg: cfg.withDefaults(), log: q.log, ctx: ctx, terminate: cancel, closing: make(chan struct{})}
}

// Close stops the pool taking work and waits for what it took, like
// Python's Pool.close followed by Pool.join: from now on every method
// returns ErrPoolClosed, while maps already running and single tasks
// already submitted finish. It returns ctx's error if they have not
// finished when ctx ends (they go on; Terminate stops them).
func (p *Pool) Close(ctx context.Context) error {
	p.shut()
	return p.join(ctx)
}

// Terminate stops the pool at once, like Python's Pool.terminate: every
// running map is cancelled and its tasks not yet run are removed from the
// queue, and waiting Apply calls fail. It waits, until ctx ends, for the
// maps to clean up.
func (p *Pool) Terminate(ctx context.Context) error {
	p.shut()
	p.terminate()
	return p.join(ctx)
}

func (p *Pool) shut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		close(p.closing)
	}
}

func (p *Pool) join(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		p.running.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("pool: maps still running: %w", context.Cause(ctx))
	}
}

// begin registers a map about to run; false once the pool is closed.
func (p *Pool) begin() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.running.Add(1)
	return true
}

// Result is the outcome of one input.
type Result struct {
	// Index is the input's position, from 0.
	Index int
	// Value is the task's JSON result; nil when Err is set.
	Value json.RawMessage
	// Err is a *TaskError when the task failed.
	Err error
}

// Map runs kind over args and returns one result per input, in input
// order, like Pool.map. A failed task gives an error in its Result; Map
// itself fails only when the map cannot complete (ctx ends, the broker
// fails), with an *IncompleteError naming the unfinished inputs.
func (p *Pool) Map(ctx context.Context, kind string, args []any) ([]Result, error) {
	return p.MapWith(ctx, kind, Values(slices.Values(args)), len(args), nil)
}

// MapWith is Map over the n inputs in, telling started, when not nil, the
// map's id as it starts: what CancelTask names it by.
func (p *Pool) MapWith(ctx context.Context, kind string, in Inputs, n int, started func(id string)) ([]Result, error) {
	chunk := p.cfg.ChunkSize
	if chunk <= 0 {
		chunk = AutoChunk(n, p.cfg.Workers)
	}
	// The inputs are counted already: a cancel of an input past them is
	// no such task however far the publisher has come.
	setup := []func(*mapping){func(m *mapping) { m.progress.total.Store(int64(n)) }}
	if started != nil {
		setup = append(setup, func(m *mapping) { started(m.id) })
	}
	argsFor := func(context.Context) Inputs { return in }
	out := make([]Result, 0, n)
	for r, err := range p.streamFor(ctx, kind, argsFor, chunk, true, setup...) {
		if err != nil {
			var ie *IncompleteError
			if errors.As(err, &ie) && ie.NotSubmitted >= 0 {
				for i := ie.NotSubmitted; i < n; i++ {
					ie.Unfinished = append(ie.Unfinished, i)
				}
				ie.NotSubmitted = -1
			}
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Imap yields results in input order while the map runs, like Pool.imap.
// At most Window task messages are in flight, so memory stays bounded for
// any number of inputs. A final error, if any, is yielded last. Breaking
// out of the loop cancels the map.
func (p *Pool) Imap(ctx context.Context, kind string, args iter.Seq[any]) iter.Seq2[Result, error] {
	return p.Stream(ctx, kind, Values(args), true)
}

// ImapUnordered yields results as they complete, like
// Pool.imap_unordered.
func (p *Pool) ImapUnordered(ctx context.Context, kind string, args iter.Seq[any]) iter.Seq2[Result, error] {
	return p.Stream(ctx, kind, Values(args), false)
}

// Stream is Imap over in when ordered, else ImapUnordered.
func (p *Pool) Stream(ctx context.Context, kind string, in Inputs, ordered bool) iter.Seq2[Result, error] {
	return p.streamFor(ctx, kind, func(context.Context) Inputs { return in }, max(p.cfg.ChunkSize, 1), ordered)
}

// streamFor is stream with inputs that see the map's own context: an
// iterator that waits for its inputs (Apply's session) must stop when the
// map does, whatever ends it.
func (p *Pool) streamFor(ctx context.Context, kind string, argsFor func(context.Context) Inputs, chunk int, ordered bool, setup ...func(*mapping)) iter.Seq2[Result, error] {
	return func(yield func(Result, error) bool) {
		if !p.begin() {
			yield(Result{}, ErrPoolClosed)
			return
		}
		defer p.running.Done()
		// Outermost, so that whatever the map waits for ends with the
		// connection, its cause the broker named.
		ctx, stopClosed := link.UntilClosed(ctx, p.q.js.Conn())
		defer stopClosed()
		var stop func()
		switch {
		case p.cfg.Run != nil:
			ctx, stop = p.cfg.Run.Watch(ctx)
			defer stop()
		case p.cfg.IdleTimeout > 0:
			ctx, stop = p.q.Watch(ctx, nil, p.cfg.IdleTimeout, p.cfg.IdleTimeout/10)
			defer stop()
		}
		ctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		defer context.AfterFunc(p.ctx, func() { cancel(context.Cause(p.ctx)) })()
		id := nuid.Next()
		m := &mapping{
			pool: p, kind: kind, id: id, chunk: chunk, ordered: ordered,
			pending: make(map[int]int), parts: make(map[int]*partial), slots: make(chan struct{}, p.cfg.Window),
			sent: make(chan sentChunk, p.cfg.Window), fatal: make(chan error, 1),
			cancels:      make(chan struct{}, 1),
			notSubmitted: -1,
		}
		m.inputsCap = inputsWindow(chunk, p.cfg.Workers)
		m.inputs = semaphore.NewWeighted(m.inputsCap)
		m.progress.total.Store(-1)
		m.opts.Deadline = p.cfg.Deadline
		m.opts.Priority = p.cfg.Priority.Zero()
		// Known to CancelTask before its handle is (setup): a cancel that
		// comes before the first input is sent holds all the same.
		p.maps.Store(id, m)
		defer p.maps.Delete(id)
		for _, f := range setup {
			f(m)
		}
		if err := m.opts.Validate(); err != nil {
			yield(Result{}, &IncompleteError{NotSubmitted: 0, Err: err})
			return
		}
		run := id
		if p.cfg.Run != nil {
			run = p.cfg.Run.ID() + "." + id
		}
		m.subject = protocol.LevelSubject(p.q.name, run, m.opts.Priority)
		m.run(ctx, argsFor, yield)
	}
}
