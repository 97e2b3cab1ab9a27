package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/procq/procq/protocol"
	"github.com/procq/procq/schedule"
)

// ErrPoolClosed is returned by a Pool's methods after Close or Terminate.
var ErrPoolClosed = errors.New("pool closed")

// Apply runs kind on one input and waits for its result, like Python's
// Pool.apply. A failed task returns its *TaskError.
//
// Single tasks of one kind share one long-running unordered map, a
// session: its results consumer, lease and window are set up once, so a
// task costs one publish and one result, not a map's set-up and clean-up.
// The session lives until the pool is closed (Close, Terminate) or it
// fails, when the next Apply starts a fresh one.
func (p *Pool) Apply(ctx context.Context, kind string, args any) (json.RawMessage, error) {
	r, err := p.ApplyAsync(ctx, kind, args)
	if err != nil {
		return nil, err
	}
	return r.Get(ctx)
}

// AsyncResult is the handle of a task submitted by ApplyAsync, like
// Python's AsyncResult.
type AsyncResult struct {
	done chan struct{}
	res  Result
	// delayed and cancel are a delayed task's (ApplyWith).
	delayed *schedule.Delayed
	cancel  func(context.Context) error
	// placed is closed once the task has its map and its index there
	// (what Cancel names it by).
	placed chan struct{}
	pool   *Pool
	mapID  string
	index  int
}

func (p *Pool) newResult() *AsyncResult {
	return &AsyncResult{done: make(chan struct{}), placed: make(chan struct{}), pool: p}
}

// place records the task's map and index.
func (r *AsyncResult) place(mapID string, index int) {
	r.mapID, r.index = mapID, index
	close(r.placed)
}

// ID is the task's id (its Procq-Task-Id) once it has one: a delayed
// task's own; "<map>.<index>" for another, once its map took it.
func (r *AsyncResult) ID() string {
	if r.delayed != nil {
		return r.delayed.ID
	}
	select {
	case <-r.placed:
		return protocol.TaskID(r.mapID, r.index)
	default:
		return ""
	}
}

// Cancel cancels the task: its result is ErrCancelled and nothing else
// of its pool is disturbed. A delayed task is removed before it fires:
// it never runs; a queued one is never run; a running one has its
// handler's context cancelled (its consumer hears of it within a moment).
// A second Cancel is nil; ErrFinished when the task has its result
// already.
func (r *AsyncResult) Cancel(ctx context.Context) error {
	if r.cancel != nil {
		err := r.cancel(ctx)
		if !errors.Is(err, schedule.ErrFired) {
			return err
		}
		// Fired: it is queued or running now.
	}
	select {
	case <-r.placed:
	case <-r.done:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	if r.Ready() {
		if errors.Is(r.res.Err, ErrCancelled) {
			return nil // cancelled before
		}
		return fmt.Errorf("task %s: %w", r.ID(), ErrFinished)
	}
	return r.pool.CancelTask(ctx, r.mapID, r.index)
}

// Get waits for the task's result, like AsyncResult.get. It returns the
// task's *TaskError when it failed, or ctx's error when ctx ends first
// (the task itself goes on).
func (r *AsyncResult) Get(ctx context.Context) (json.RawMessage, error) {
	if err := r.Wait(ctx); err != nil {
		return nil, err
	}
	return r.res.Value, r.res.Err
}

// Wait waits until the result is there or ctx ends, like AsyncResult.wait.
func (r *AsyncResult) Wait(ctx context.Context) error {
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Ready reports whether the task has its result, like AsyncResult.ready.
func (r *AsyncResult) Ready() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Successful reports whether the task completed without error, like
// AsyncResult.successful; false while it is not ready.
func (r *AsyncResult) Successful() bool { return r.Ready() && r.res.Err == nil }

func (r *AsyncResult) set(res Result) {
	r.res = res
	close(r.done)
}

// ApplyAsync submits kind on one input and returns at once with a handle
// to its result, like Python's Pool.apply_async. The error is set only
// when the task could not be handed to the pool (ctx ended, pool closed).
func (p *Pool) ApplyAsync(ctx context.Context, kind string, args any) (*AsyncResult, error) {
	r := p.newResult()
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	// A session may end (its map failed) just as this request comes: one
	// more try on a fresh session, then the session's own error.
	for try := 0; ; try++ {
		s, err := p.session(kind)
		if err != nil {
			return nil, err
		}
		select {
		case s.in <- applyReq{args: args, res: r}:
			<-r.placed // at once: the session places what it takes before it sends it; then ID holds
			return r, nil
		case <-s.ended:
			if try > 0 {
				return nil, s.failure()
			}
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// applyReq is one input of a session and the handle of its result.
type applyReq struct {
	args any
	res  *AsyncResult
}

// applySession is the unordered map that carries a pool's single tasks of
// one kind.
type applySession struct {
	in    chan applyReq
	ended chan struct{} // closed once the map is over

	mu      sync.Mutex
	mapID   string               // the session's map
	waiting map[int]*AsyncResult // by the index the map gave the input
	next    int                  // the index of the next input taken
	err     error                // why the session ended
}

// failure is why the session ended.
func (s *applySession) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// session returns the running session of kind, starting one if needed.
func (p *Pool) session(kind string) (*applySession, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrPoolClosed
	}
	if s := p.sessions[kind]; s != nil {
		select {
		case <-s.ended:
		default:
			return s, nil
		}
	}
	s := &applySession{in: make(chan applyReq), ended: make(chan struct{}), waiting: map[int]*AsyncResult{}}
	if p.sessions == nil {
		p.sessions = map[string]*applySession{}
	}
	p.sessions[kind] = s
	p.running.Go(func() { s.run(p, kind) })
	return s, nil
}

// run maps kind over the requests until the pool closes or the map fails,
// then fails every task still waiting.
func (s *applySession) run(p *Pool, kind string) {
	inputs := func(mapCtx context.Context) Inputs {
		return Values(func(yield func(any) bool) {
			for {
				select {
				case req := <-s.in:
					s.mu.Lock()
					s.waiting[s.next] = req.res
					req.res.place(s.mapID, s.next)
					s.next++
					s.mu.Unlock()
					if !yield(req.args) {
						return
					}
				case <-p.closing:
					return // Close: no more inputs; the map finishes those taken
				case <-mapCtx.Done():
					return // the map stopped: Terminate, no consumer left, a failure
				}
			}
		})
	}
	err := ErrPoolClosed
	for r, rerr := range p.streamFor(p.ctx, kind, inputs, 1, false, func(m *mapping) { s.mapID = m.id }) {
		if rerr != nil {
			err = rerr
			break
		}
		s.mu.Lock()
		res := s.waiting[r.Index]
		delete(s.waiting, r.Index)
		s.mu.Unlock()
		if res != nil {
			// The session's index means nothing to the caller: a single
			// task is input 0.
			r.Index = 0
			if te, ok := r.Err.(*TaskError); ok {
				te.Index = 0
			}
			res.set(r)
		}
	}
	s.mu.Lock()
	s.err = err
	waiting := s.waiting
	s.waiting = nil
	s.mu.Unlock()
	close(s.ended)
	for _, res := range waiting {
		res.set(Result{Err: err})
	}
}
