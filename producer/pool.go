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
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/procq/procq/task"
)

// PoolConfig configures a Pool.
type PoolConfig struct {
	// ChunkSize is how many inputs travel in one task message. 0 picks one:
	// for Map, like Python's Pool.map, len(inputs)/(4*Workers) rounded up
	// (at most MaxAutoChunk); for the streaming forms, 1.
	ChunkSize int
	// Workers is how many consumer processes serve the pool; it only sizes
	// the automatic chunk. Defaults to 1.
	Workers int
	// Window caps the task messages in flight: published but not yet
	// answered (unordered) or not yet yielded (ordered). It bounds memory
	// for any number of inputs. Defaults to 1024.
	Window int
	// Run, when set, is the run the map belongs to (see Run): its tasks go
	// on the run's subjects, so the run's sentinels wait for them.
	Run string
	// Label, when set, names each task message "<Label>-<n>" (n from 1) in
	// a Procq-Label header: the consumer prints its start and finish lines
	// with its PID, as the Process demo shows.
	Label string
}

// MaxAutoChunk caps the automatic chunk size, so a chunk stays far below
// the broker's 1 MiB message limit for small arguments.
const MaxAutoChunk = 1000

func (c PoolConfig) withDefaults() PoolConfig {
	c.Workers = cmp.Or(c.Workers, 1)
	c.Window = cmp.Or(c.Window, 1024)
	return c
}

// AutoChunk is the chunk size Map uses for n inputs on workers processes.
func AutoChunk(n, workers int) int {
	if n <= 0 {
		return 1
	}
	per := max(workers, 1) * 4
	return min(max((n+per-1)/per, 1), MaxAutoChunk)
}

// Pool maps task kinds over inputs across the consumer processes of one
// queue, like Python's multiprocessing.Pool, with results travelling back
// through JetStream.
type Pool struct {
	q   *Queue
	cfg PoolConfig
	log *slog.Logger
}

// NewPool returns a pool that puts its tasks on q.
func NewPool(q *Queue, cfg PoolConfig) *Pool {
	return &Pool{q: q, cfg: cfg.withDefaults(), log: q.log}
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

// TaskError is the error a task returned for one input.
type TaskError struct {
	Index   int
	Kind    string
	Message string
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("%s #%d: %s", e.Kind, e.Index, e.Message)
}

// IncompleteError says a map stopped before every input had its result.
type IncompleteError struct {
	// Unfinished lists the submitted inputs without a result, sorted.
	Unfinished []int
	// NotSubmitted is the index of the first input never submitted, or -1.
	// Map folds the inputs from there on into Unfinished.
	NotSubmitted int
	// Err is why the map stopped (a context error, or a broker failure).
	Err error
}

func (e *IncompleteError) Error() string {
	s := fmt.Sprintf("map stopped with %d inputs unfinished (%s)", len(e.Unfinished), formatRanges(e.Unfinished))
	if e.NotSubmitted >= 0 {
		s += fmt.Sprintf(", inputs from #%d on never submitted", e.NotSubmitted)
	}
	return s + ": " + e.Err.Error()
}

func (e *IncompleteError) Unwrap() error { return e.Err }

// Map runs kind over args and returns one result per input, in input
// order, like Pool.map. A failed task gives an error in its Result; Map
// itself fails only when the map cannot complete (ctx ends, the broker
// fails), with an *IncompleteError naming the unfinished inputs.
func (p *Pool) Map(ctx context.Context, kind string, args []any) ([]Result, error) {
	chunk := p.cfg.ChunkSize
	if chunk <= 0 {
		chunk = AutoChunk(len(args), p.cfg.Workers)
	}
	out := make([]Result, 0, len(args))
	for r, err := range p.stream(ctx, kind, slices.Values(args), chunk, true) {
		if err != nil {
			var ie *IncompleteError
			if errors.As(err, &ie) && ie.NotSubmitted >= 0 {
				for i := ie.NotSubmitted; i < len(args); i++ {
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
	return p.stream(ctx, kind, args, max(p.cfg.ChunkSize, 1), true)
}

// ImapUnordered yields results as they complete, like
// Pool.imap_unordered.
func (p *Pool) ImapUnordered(ctx context.Context, kind string, args iter.Seq[any]) iter.Seq2[Result, error] {
	return p.stream(ctx, kind, args, max(p.cfg.ChunkSize, 1), false)
}

func (p *Pool) stream(ctx context.Context, kind string, args iter.Seq[any], chunk int, ordered bool) iter.Seq2[Result, error] {
	return func(yield func(Result, error) bool) {
		id := nuid.Next()
		subject := task.WorkSubject(p.q.name, id)
		if p.cfg.Run != "" {
			subject = task.WorkSubject(p.q.name, p.cfg.Run+"."+id)
		}
		m := &mapping{
			pool: p, kind: kind, id: id, subject: subject, chunk: chunk, ordered: ordered,
			pending: make(map[int]int), parts: make(map[int]*partial), slots: make(chan struct{}, p.cfg.Window),
			sent: make(chan sentChunk, p.cfg.Window), fatal: make(chan error, 1),
			notSubmitted: -1,
		}
		m.run(ctx, args, yield)
	}
}

// mapping is one running map.
type mapping struct {
	pool    *Pool
	kind    string
	id      string // the map's id: its result subject and message ids
	subject string // its tasks' subject
	chunk   int
	ordered bool
	slots   chan struct{} // the window: one token per task message in flight

	notices  <-chan string  // consumers' reports of results they could not store
	sent     chan sentChunk // published asynchronously, awaiting the stream's ack
	fatal    chan error     // a chunk the stream would not store
	received int            // result messages read, for trim

	mu           sync.Mutex
	pending      map[int]int      // first index -> inputs, of chunks without a result
	parts        map[int]*partial // chunks whose answer arrives in parts
	notSubmitted int
}

// sentChunk is a task message published asynchronously.
type sentChunk struct {
	msg    *nats.Msg
	stored jetstream.PubAckFuture
	at     time.Time // when it was published
}

// published is what the publisher reports when it stops: how many inputs
// it submitted and why it stopped early, if it did.
type published struct {
	total int
	err   error
}

func (m *mapping) run(ctx context.Context, args iter.Seq[any], yield func(Result, error) bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	log := m.pool.log.With("map", m.id, "task", m.kind)

	results, stopResults, err := m.subscribe(ctx)
	if err != nil {
		yield(Result{}, &IncompleteError{NotSubmitted: 0, Err: err})
		return
	}
	notices := make(chan string, 1)
	noticeSub, err := m.pool.q.js.Conn().Subscribe(task.NoticeSubject(m.id), func(n *nats.Msg) {
		select {
		case notices <- string(n.Data):
		default: // one pending report is enough to judge by
		}
	})
	if err != nil {
		stopResults()
		yield(Result{}, &IncompleteError{NotSubmitted: 0, Err: err})
		return
	}
	defer func() { _ = noticeSub.Unsubscribe() }()
	m.notices = notices
	pubDone := make(chan published, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(m.sent)
		pubDone <- m.publish(ctx, args)
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
	early = cause != nil
	finish()
	if cause != nil && !errors.Is(cause, errStopped) {
		// Built once the publisher has stopped, so it knows what was
		// never submitted.
		yield(Result{}, m.incomplete(cause))
	}
}

// errStopped marks a map the caller broke out of.
var errStopped = errors.New("map stopped by the caller")

// subscribe starts reading the map's results with an ordered consumer.
func (m *mapping) subscribe(ctx context.Context) (<-chan jetstream.Msg, func(), error) {
	r := &resultsReader{m: m, subject: task.ResultSubject(m.id)}
	if err := r.open(ctx); err != nil {
		return nil, nil, err
	}
	ch := make(chan jetstream.Msg, 64)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(ch)
		r.run(ctx, ch, quit)
	})
	stop := func() {
		close(quit)
		(*r.it.Load()).Stop()
		wg.Wait()
	}
	return ch, stop, nil
}

// stallCheck is how long the results reader waits for a result before it
// asks the stream whether one is stored that its consumer does not
// deliver.
const stallCheck = 5 * time.Second

// resultsReader reads one map's results. The ordered consumer recovers by
// itself from a lost connection and missed heartbeats, but not always
// from the death of the cluster node that held it: its pull requests then
// find no responder, forever. So when no result came for stallCheck, the
// reader looks at the stream, and where a result is stored past the last
// one delivered, it opens a new consumer from there.
type resultsReader struct {
	m       *mapping
	subject string
	last    uint64 // stream sequence of the last result delivered
	it      atomic.Pointer[jetstream.MessagesContext]
}

// open starts a consumer after the last result delivered.
func (r *resultsReader) open(ctx context.Context) error {
	// Few resets: nats.go retries a failing reset without end inside Next,
	// out of this reader's sight; past them Next fails and the reader
	// opens a new consumer itself, with its own bounded attempts and logs.
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{r.subject}, MaxResetAttempts: 3}
	if r.last > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.last+1
	}
	cons, err := r.m.pool.q.js.OrderedConsumer(ctx, task.ResultsStream, cfg)
	if err != nil {
		return fmt.Errorf("results consumer: %w", err)
	}
	// Buffer at most a window of results in the client, so memory does not
	// depend on how big a map's results are.
	it, err := cons.Messages(jetstream.PullMaxMessages(min(r.m.pool.cfg.Window, 500)))
	if err != nil {
		return fmt.Errorf("results consumer: %w", err)
	}
	r.it.Store(&it)
	return nil
}

func (r *resultsReader) run(ctx context.Context, ch chan<- jetstream.Msg, quit <-chan struct{}) {
	log := r.m.pool.q.log
	for {
		it := *r.it.Load()
		msg, err := it.Next(jetstream.NextMaxWait(stallCheck))
		switch {
		case errors.Is(err, nats.ErrConnectionClosed):
			return
		case errors.Is(err, nats.ErrTimeout):
			if !r.stalled(ctx) {
				continue
			}
			log.Warn("results reader stalled with results stored; reading on with a new consumer",
				"map", r.m.id, "after_seq", r.last)
		case err != nil:
			select {
			case <-quit:
				return // stopped
			default:
			}
			log.Warn("results consumer failed; reading on with a new consumer", "map", r.m.id,
				"after_seq", r.last, "error", err)
		}
		if err != nil {
			it.Stop()
			if !r.reopen(ctx, quit) {
				return
			}
			continue
		}
		if meta, err := msg.Metadata(); err == nil {
			r.last = meta.Sequence.Stream
		}
		select {
		case ch <- msg:
		case <-quit:
			return
		}
	}
}

// reopen opens a new consumer after the last result delivered, trying
// again every second while the results stream does not answer; it reports
// false when the map ends first.
func (r *resultsReader) reopen(ctx context.Context, quit <-chan struct{}) bool {
	for {
		actx, cancel := context.WithTimeout(ctx, stallCheck)
		err := r.open(actx)
		cancel()
		select {
		case <-quit: // stop may have stopped the old iterator only
			(*r.it.Load()).Stop()
			return false
		default:
		}
		if err == nil {
			return true
		}
		r.m.pool.q.log.Warn("results consumer not reopened; retrying", "map", r.m.id, "error", err,
			"waiting_for", "the results stream's leader")
		if task.Sleep(ctx, time.Second) != nil {
			return false
		}
	}
}

// stalled reports whether the stream holds a result of this map past the
// last one delivered.
func (r *resultsReader) stalled(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, stallCheck)
	defer cancel()
	s, err := r.m.pool.q.js.Stream(ctx, task.ResultsStream)
	if err != nil {
		return false
	}
	last, err := s.GetLastMsgForSubject(ctx, r.subject)
	return err == nil && last.Sequence > r.last
}

// publish submits the inputs in chunks, holding a window slot per chunk.
// It returns how many inputs it submitted and, when it stopped early, why.
func (m *mapping) publish(ctx context.Context, args iter.Seq[any]) published {
	submitted := 0
	batch := make([]json.RawMessage, 0, m.chunk)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		select {
		case m.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		m.mu.Lock()
		m.pending[submitted] = len(batch)
		m.mu.Unlock()
		if err := m.send(ctx, submitted, batch); err != nil {
			m.mu.Lock()
			delete(m.pending, submitted)
			m.mu.Unlock()
			return err
		}
		submitted += len(batch)
		batch = batch[:0]
		return nil
	}
	stop := func(err error) published {
		m.mu.Lock()
		m.notSubmitted = submitted
		m.mu.Unlock()
		return published{total: submitted, err: err}
	}
	for a := range args {
		raw, err := json.Marshal(a)
		if err != nil {
			return stop(fmt.Errorf("input #%d: %w", submitted+len(batch), err))
		}
		batch = append(batch, raw)
		if len(batch) == m.chunk {
			if err := flush(); err != nil {
				return stop(err)
			}
		}
	}
	if err := flush(); err != nil {
		return stop(err)
	}
	return published{total: submitted}
}

// send publishes one task message without waiting for the stream's ack;
// confirm checks the acks in the background. Waiting a round trip per
// message would cap a map at the broker's request rate.
func (m *mapping) send(ctx context.Context, start int, batch []json.RawMessage) error {
	q := m.pool.q
	var body []byte
	msg := q.taskMsg(m.id, start, m.kind, nil)
	msg.Subject = m.subject
	if len(batch) == 1 {
		body = batch[0]
	} else {
		body, _ = json.Marshal(batch) // RawMessages that were marshalled already
		msg.Header.Set(task.HeaderChunk, strconv.Itoa(len(batch)))
	}
	msg.Data = body
	msg.Header.Set(task.HeaderReply, task.ResultSubject(m.id))
	if l := m.pool.cfg.Label; l != "" {
		msg.Header.Set(task.HeaderLabel, l+"-"+strconv.Itoa(start/m.chunk+1))
	}
	f, err := q.js.PublishMsgAsync(msg)
	if err != nil {
		return fmt.Errorf("submit #%d: %w", start, err)
	}
	select {
	case m.sent <- sentChunk{msg: msg, stored: f, at: time.Now()}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// confirm waits for the stream's ack of every chunk sent. A chunk the
// stream refused or did not acknowledge is published again synchronously
// (its Nats-Msg-Id makes a duplicate harmless), as Queue.Put does: a full
// stream or a broker that does not answer is retried for up to
// queue.put_timeout. Any other failure stops the map.
//
// An acknowledgement that never comes (the publish went to a stream
// leader that died with it) counts as a refusal after publishAckWait:
// without that bound the chunk would never be stored, never answered, and
// the map would wait for it forever.
func (m *mapping) confirm(ctx context.Context) {
	timer := time.NewTimer(publishAckWait)
	defer timer.Stop()
	var warned time.Time // a leader's death leaves hundreds: one line a second
	unacked := 0
	for sc := range m.sent {
		timer.Reset(max(time.Until(sc.at.Add(publishAckWait)), 0))
		select {
		case <-sc.stored.Ok():
			continue
		case <-sc.stored.Err():
		case <-timer.C:
			unacked++
			if time.Since(warned) > time.Second {
				m.pool.q.log.Warn("tasks not acknowledged in time; publishing them again", "since_last_warning", unacked,
					"index", sc.msg.Header.Get(task.HeaderIndex), "waited", publishAckWait)
				warned, unacked = time.Now(), 0
			}
		case <-ctx.Done():
			continue // drain m.sent so the publisher never blocks
		}
		if err := m.resend(ctx, sc.msg); err != nil {
			select {
			case m.fatal <- err:
			default:
			}
		}
	}
}

// publishAckWait bounds the wait for the stream's acknowledgement of a
// chunk published asynchronously.
const publishAckWait = 5 * time.Second

func (m *mapping) resend(ctx context.Context, msg *nats.Msg) error {
	if err := m.pool.q.publish(ctx, msg); err != nil {
		return fmt.Errorf("submit #%s: %w", msg.Header.Get(task.HeaderIndex), err)
	}
	return nil
}

// collect reads results until every submitted input has one, the
// publisher failed, or ctx ends; it yields each result in the map's order.
func (m *mapping) collect(ctx context.Context, results <-chan jetstream.Msg, pubDone <-chan published, yield func(Result, error) bool) error {
	total := -1  // known once the publisher is done
	yielded := 0 // results handed to the caller
	next := 0    // ordered: the next index to yield
	buf := map[int][]Result{}
	var pubErr error
	var failing storeFailures
	emit := func(rs []Result) bool {
		for _, r := range rs {
			if !yield(r, nil) {
				return false
			}
			yielded++
		}
		<-m.slots
		return true
	}
	for total < 0 || yielded < total {
		if pubErr != nil && total >= 0 && m.inFlight() == 0 && len(buf) == 0 {
			break // everything submitted was answered; the rest never will be
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case p := <-pubDone:
			total, pubErr = p.total, p.err
			pubDone = nil
		case err := <-m.fatal:
			return err
		case n := <-m.notices:
			if err := failing.add(n); err != nil {
				return err
			}
		case msg, ok := <-results:
			if !ok {
				return errors.New("results consumer stopped")
			}
			failing = storeFailures{}
			m.trim(ctx, msg)
			for _, a := range m.parse(msg) {
				if !m.ordered {
					if !emit(a.results) {
						return errStopped
					}
					continue
				}
				buf[a.start] = a.results
				for rs, ok := buf[next]; ok; rs, ok = buf[next] {
					delete(buf, next)
					next += len(rs)
					if !emit(rs) {
						return errStopped
					}
				}
			}
		}
	}
	return pubErr
}

// storeFailures tracks consumers' reports that the map's results could not
// be stored since the last result arrived.
type storeFailures struct {
	since time.Time
	n     int
	last  string
}

// storeFailWindow is how long results may keep failing to be stored, with
// no result arriving, before the map fails.
const storeFailWindow = 20 * time.Second

// add records one report and returns an error once the map must fail.
func (f *storeFailures) add(msg string) error {
	if f.n == 0 {
		f.since = time.Now()
	}
	f.n++
	f.last = msg
	if d := time.Since(f.since); f.n >= 3 && d >= storeFailWindow {
		return fmt.Errorf("%w: consumers kept reporting failures for %v and no result was stored, the last: %s; its store may be full or failing (the broker's log names the cause)",
			ErrResultsNotStored, d.Round(time.Second), f.last)
	}
	return nil
}

// trimEvery is how many result messages the map reads between purges of
// the ones it has read, so the results stream stays small during a long map.
const trimEvery = 256

// trim purges the map's results up to msg every trimEvery messages: the map
// has copied what it needs, so the broker need not keep them.
func (m *mapping) trim(ctx context.Context, msg jetstream.Msg) {
	m.received++
	if m.received%trimEvery != 0 {
		return
	}
	meta, err := msg.Metadata()
	if err != nil {
		return
	}
	err = m.pool.q.topo.Results.Purge(ctx, jetstream.WithPurgeSubject(task.ResultSubject(m.id)),
		jetstream.WithPurgeSequence(meta.Sequence.Stream+1))
	if err != nil && ctx.Err() == nil {
		m.pool.log.Warn("trim results", "map", m.id, "error", err)
	}
}

// answered is the results of one task message.
type answered struct {
	start   int
	results []Result
}

// parse decodes a result message into the answers still awaited. A
// duplicate answer (a redelivered task's second result) or a malformed one
// is dropped and logged.
func (m *mapping) parse(msg jetstream.Msg) []answered {
	var answers []task.Answer
	if err := json.Unmarshal(msg.Data(), &answers); err != nil {
		m.pool.log.Warn("malformed result ignored", "map", m.id, "error", err)
		return nil
	}
	out := make([]answered, 0, len(answers))
	for _, a := range answers {
		if rs, ok := m.accept(a); ok {
			out = append(out, answered{start: rs[0].Index, results: rs})
		}
	}
	return out
}

// accept takes one answer: a whole chunk's, or a part of one (a consumer
// splits an answer too large for one message). It returns the chunk's
// results once the chunk is complete. A duplicate (a redelivered task's
// second answer) or a malformed answer is dropped and logged.
func (m *mapping) accept(a task.Answer) ([]Result, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	start := a.Index
	if start >= 0 && m.chunk > 0 {
		start -= a.Index % m.chunk
	}
	n, known := m.pending[start]
	switch {
	case !known:
		m.pool.log.Debug("duplicate result ignored", "map", m.id, "index", a.Index)
		return nil, false
	case len(a.Outcomes) == 0 || a.Index+len(a.Outcomes) > start+n:
		m.pool.log.Warn("result with wrong input count ignored", "map", m.id, "index", a.Index, "chunk", n, "got", len(a.Outcomes))
		return nil, false
	}
	p := m.parts[start]
	if p == nil {
		p = &partial{rs: make([]Result, n), have: make([]bool, n)}
	}
	for i, o := range a.Outcomes {
		idx := a.Index + i
		if p.have[idx-start] {
			continue
		}
		p.have[idx-start] = true
		p.got++
		p.rs[idx-start] = Result{Index: idx, Value: o.Result}
		if o.Error != "" {
			p.rs[idx-start] = Result{Index: idx, Err: &TaskError{Index: idx, Kind: m.kind, Message: o.Error}}
		}
	}
	if p.got < n {
		m.parts[start] = p
		return nil, false
	}
	delete(m.parts, start)
	delete(m.pending, start)
	return p.rs, true
}

// partial is a chunk whose answer arrives in parts.
type partial struct {
	rs   []Result
	have []bool
	got  int
}

func (m *mapping) inFlight() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pending)
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
		if err := q.topo.Tasks.Purge(ctx, jetstream.WithPurgeSubject(m.subject)); err != nil {
			log.Warn("purge unfinished tasks", "error", err)
		}
	}
	if err := q.topo.Results.Purge(ctx, jetstream.WithPurgeSubject(task.ResultSubject(m.id))); err != nil {
		log.Warn("purge results", "error", err)
	}
}

// formatRanges renders sorted indexes compactly: "0-3, 7, 9-12".
func formatRanges(idx []int) string {
	if len(idx) == 0 {
		return "none"
	}
	var s []byte
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		if len(s) > 0 {
			s = append(s, ", "...)
		}
		s = strconv.AppendInt(s, int64(idx[i]), 10)
		if j > i {
			s = append(append(s, '-'), strconv.Itoa(idx[j])...)
		}
		i = j + 1
	}
	return string(s)
}
