package producer

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/procq/procq/link"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/schedule"
	"github.com/procq/procq/unique"
	"golang.org/x/sync/semaphore"
)

// mapping is one running map.
type mapping struct {
	pool    *Pool
	kind    string
	id      string // the map's id: its result subject and message ids
	subject string // its tasks' subject
	chunk   int    // inputs per chunk at most; big inputs end a chunk early
	chunks  int    // chunks sent, for their labels (the publisher's own)
	ordered bool
	// opts go on every task (a deadline; ...). opts.At makes the map's
	// one task a delayed task due then (ApplyWith); onDelayed hears of it
	// once the broker stored it.
	opts      protocol.TaskOptions
	onDelayed func(*schedule.Delayed)
	onUnique  func(*unique.Lock)  // with opts.Unique: the key, once the task is stored
	slots     chan struct{}       // the window: one token per task message in flight
	inputs    *semaphore.Weighted // and its inputs in flight (inputsWindow)
	inputsCap int64

	notices  <-chan string  // consumers' reports of results they could not store
	sent     chan sentChunk // published asynchronously, awaiting the stream's ack
	fatal    chan error     // a chunk the stream would not store
	received int            // result messages read, for trim
	progress progress       // for the lease

	cancels chan struct{} // wakes collect: inputs cancelled in flight (cancelQ) want their result now
	deads   chan struct{} // wakes collect: tasks dead-lettered unanswered (deadQ) fail their inputs

	mu           sync.Mutex
	pending      map[int]int      // first index -> inputs, of chunks without a result
	parts        map[int]*partial // chunks whose answer arrives in parts
	notSubmitted int
	cancelled    map[int]bool // inputs cancelled (CancelTask): their result is ErrCancelled
	cancelQ      []int        // of those, the ones in flight whose result collect has not set yet
	deadQ        []deadTask   // tasks dead-lettered unanswered, not yet failed by collect (watchDead)
}

func (m *mapping) run(ctx context.Context, inputsFor func(context.Context) Inputs, yield func(Result, error) bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	log := m.pool.log.With("map", m.id, "task", m.kind)

	// fail ends a map whose setup failed: with why it stopped when it was
	// stopped meanwhile, not that its setup was cancelled.
	fail := func(err error) {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		yield(Result{}, &IncompleteError{NotSubmitted: 0, Err: err})
	}
	results, stopResults, err := m.subscribe(ctx)
	if err != nil {
		fail(err)
		return
	}
	notices := make(chan string, 1)
	noticeSub, err := m.pool.q.js.Conn().Subscribe(protocol.NoticeSubject(m.id), func(n *nats.Msg) {
		select {
		case notices <- string(n.Data):
		default: // one pending report is enough to judge by
		}
	})
	if err != nil {
		stopResults()
		fail(err)
		return
	}
	defer func() { _ = noticeSub.Unsubscribe() }()
	m.notices = notices
	stopCancels, err := m.answerCancels(ctx)
	if err != nil {
		stopResults()
		fail(err)
		return
	}
	defer stopCancels()
	stopDead, err := m.watchDead(ctx)
	if err != nil {
		stopResults()
		fail(err)
		return
	}
	defer stopDead()
	pubDone := make(chan published, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(m.sent)
		pubDone <- m.publish(ctx, inputsFor(ctx))
	})
	wg.Go(func() { m.confirm(ctx) })
	wg.Go(func() { m.keepLease(ctx) })

	// The goroutines are stopped and the broker cleaned up however the map
	// ends: completed, failed, broken out of, or a panic in the caller's
	// loop body (which unwinds through yield).
	early := true
	var once sync.Once
	finish := func() {
		once.Do(func() {
			cancel()
			stopResults()
			wg.Wait()
			m.cleanup(ctx, early, log)
		})
	}
	defer finish()
	cause := m.collect(ctx, results, pubDone, yield)
	if cause != nil && !errors.Is(cause, errStopped) {
		// Whichever part of the map met the closed connection first
		// (the publisher, the reader), the broker's loss is the cause.
		if closed := link.Closed(m.pool.q.js.Conn()); closed != nil {
			cause = closed
		}
	}
	early = cause != nil
	finish()
	if cause != nil && !errors.Is(cause, errStopped) {
		// Built once the publisher has stopped, so it knows what was
		// never submitted.
		yield(Result{}, m.incomplete(cause))
	}
}

// inputsWindow caps a map's inputs in flight, published and not yet
// yielded, as the message window caps its task messages: enough chunks for
// every worker to hold several while others travel, so that a map's memory
// is the same at a million inputs as at ten (the message window alone let
// a whole 10M-input map of 10,000-input chunks into the broker at once,
// and its results pile up in the producer).
func inputsWindow(chunk, workers int) int64 {
	return int64(max(8*max(workers, 1)*chunk, 1<<16))
}

// takeInputs waits for room for n more inputs in flight; a chunk larger
// than the whole window waits for it to be empty.
func (m *mapping) takeInputs(ctx context.Context, n int) error {
	return m.inputs.Acquire(ctx, min(int64(n), m.inputsCap))
}

// freeInputs gives back the room of n inputs that left flight.
func (m *mapping) freeInputs(n int) { m.inputs.Release(min(int64(n), m.inputsCap)) }

func (m *mapping) inFlight() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pending)
}

// unyielded puts back among the pending the chunks collect answered but
// held back for order (an earlier input had no result yet): a map that
// stops then names them unfinished, since the caller never got them.
func (m *mapping) unyielded(held map[int]answered) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for start, a := range held {
		m.pending[start] = a.len()
	}
}

func (m *mapping) incomplete(err error) *IncompleteError {
	m.mu.Lock()
	defer m.mu.Unlock()
	var idx []int
	for start, n := range m.pending {
		for i := range n {
			idx = append(idx, start+i)
		}
	}
	slices.Sort(idx)
	return &IncompleteError{Unfinished: idx, NotSubmitted: m.notSubmitted, Err: err}
}

// cleanup removes the map's results and, when it stopped early, its
// unfinished tasks, so nothing of it piles up in the broker.
func (m *mapping) cleanup(ctx context.Context, early bool, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	q := m.pool.q
	if early {
		// The delayed tasks and their firings on the way first, then the
		// queue: a task that fires meanwhile lands before the queue's purge.
		if err := m.pool.q.purgeDelayed(ctx, m.subject); err != nil {
			log.Warn("purge delayed tasks", "error", err)
		}
		if err := q.topo.Tasks.Purge(ctx, jetstream.WithPurgeSubject(m.subject)); err != nil {
			log.Warn("purge unfinished tasks", "error", err)
		}
	}
	if err := q.topo.Results.Purge(ctx, jetstream.WithPurgeSubject(protocol.ResultSubject(m.id))); err != nil {
		log.Warn("purge results", "error", err)
	}
}
