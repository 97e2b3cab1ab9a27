package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// collect reads results until every submitted input has one, the
// publisher failed, or ctx ends; it yields each result in the map's order.
func (m *mapping) collect(ctx context.Context, results <-chan jetstream.Msg, pubDone <-chan published, yield func(Result, error) bool) error {
	total := -1  // known once the publisher is done
	yielded := 0 // results handed to the caller
	next := 0    // ordered: the next index to yield
	buf := map[int]answered{}
	defer m.unyielded(buf)
	var pubErr error
	var failing storeFailures
	emit := func(a answered) bool {
		n := a.len()
		for i := range n {
			if !yield(a.at(i), nil) {
				return false
			}
			yielded++
		}
		m.progress.done.Store(int64(yielded))
		<-m.slots
		m.freeInputs(n)
		return true
	}
	// take hands complete chunks' results on: as they come, or in order.
	take := func(as []answered) bool {
		for _, a := range as {
			if !m.ordered {
				if !emit(a) {
					return false
				}
				continue
			}
			buf[a.start] = a
			for b, ok := buf[next]; ok; b, ok = buf[next] {
				delete(buf, next)
				next += b.len()
				if !emit(b) {
					return false
				}
			}
		}
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
			m.progress.total.Store(int64(total))
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
			if !take(m.parse(msg)) {
				return errStopped
			}
		case <-m.deads:
			if !take(m.deadAnswers()) {
				return errStopped
			}
		case <-failing.timer():
			failing.wake = nil // with fewer than 3 reports, the next one decides
			if err := failing.check(); err != nil {
				return err
			}
		case <-m.cancels:
			m.mu.Lock()
			q := m.cancelQ
			m.cancelQ = nil
			m.mu.Unlock()
			for _, index := range q {
				a, ok := m.accept(protocol.Answer{Index: index, Outcomes: []task.Outcome{{Error: protocol.CancelledText}}})
				if ok && !take([]answered{a}) {
					return errStopped
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
	wake  <-chan time.Time // when the window ends, once a report came
}

// storeFailWindow is how long results may keep failing to be stored, with
// no result arriving, before the map fails.
const storeFailWindow = 20 * time.Second

// add records one report and returns an error once the map must fail.
func (f *storeFailures) add(msg string) error {
	if f.n == 0 {
		f.since = time.Now()
		f.wake = time.After(storeFailWindow)
	}
	f.n++
	f.last = msg
	return f.check()
}

// timer fires when the window of the reports so far ends: the map fails
// then even when the consumers report no more (nil: no report).
func (f *storeFailures) timer() <-chan time.Time { return f.wake }

// check returns an error once reports came for storeFailWindow with no
// result arriving.
func (f *storeFailures) check() error {
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
	err = m.pool.q.topo.Results.Purge(ctx, jetstream.WithPurgeSubject(protocol.ResultSubject(m.id)),
		jetstream.WithPurgeSequence(meta.Sequence.Stream+1))
	if err != nil && ctx.Err() == nil {
		m.pool.log.Warn("trim results", "map", m.id, "error", err)
	}
}

// answered is the results of one task message, from its first input on:
// a whole chunk's values as they came (every input succeeded), or its
// results one by one.
type answered struct {
	start   int
	values  []json.RawMessage
	results []Result
}

func (a answered) len() int {
	if a.values != nil {
		return len(a.values)
	}
	return len(a.results)
}

// at is the result of the message's input i.
func (a answered) at(i int) Result {
	if a.values != nil {
		return Result{Index: a.start + i, Value: a.values[i]}
	}
	return a.results[i]
}

// parse decodes a result message into the answers still awaited. A
// duplicate answer (a redelivered task's second result) or a malformed one
// is dropped and logged.
func (m *mapping) parse(msg jetstream.Msg) []answered {
	answers, err := protocol.DecodeAnswers(msg.Data(), m.chunk)
	if err != nil {
		m.pool.log.Warn("malformed result ignored", "map", m.id, "error", err)
		return nil
	}
	out := make([]answered, 0, len(answers))
	for _, a := range answers {
		if got, ok := m.accept(a); ok {
			out = append(out, got)
		}
	}
	return out
}

// accept takes one answer: a whole chunk's, or a part of one (a consumer
// splits an answer too large for one message). It returns the chunk's
// results once the chunk is complete. A duplicate (a redelivered task's
// second answer) or a malformed answer is dropped and logged.
func (m *mapping) accept(a protocol.Answer) (answered, bool) {
	values, compact := a.Values()
	if a.Results != nil && !compact {
		m.pool.log.Warn("result whose results are no JSON array ignored", "map", m.id, "index", a.Index)
		return answered{}, false
	}
	got := len(a.Outcomes)
	if compact {
		got = len(values)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	start, n, known := m.chunkOf(a.Index)
	switch {
	case !known:
		m.pool.log.Debug("duplicate result ignored", "map", m.id, "index", a.Index)
		return answered{}, false
	case got == 0 || a.Index+got > start+n:
		m.pool.log.Warn("result with wrong input count ignored", "map", m.id, "index", a.Index, "chunk", n, "got", got)
		return answered{}, false
	}
	p := m.parts[start]
	if p == nil && compact && a.Index == start && got == n && len(m.cancelled) == 0 {
		// A whole chunk that succeeded, the common case: its values as
		// they are, made results only as they are yielded.
		delete(m.pending, start)
		return answered{start: start, values: values}, true
	}
	if p == nil {
		p = &partial{rs: make([]Result, n), have: make([]bool, n)}
	}
	for i := range got {
		idx := a.Index + i
		if p.have[idx-start] {
			continue
		}
		p.have[idx-start] = true
		p.got++
		switch {
		case len(m.cancelled) > 0 && m.cancelled[idx]:
			p.rs[idx-start] = m.cancelledResult(idx)
		case compact:
			p.rs[idx-start] = Result{Index: idx, Value: values[i]}
		case a.Outcomes[i].Error != "":
			p.rs[idx-start] = Result{Index: idx, Err: &TaskError{Index: idx, Kind: m.kind, Message: a.Outcomes[i].Error}}
		default:
			p.rs[idx-start] = Result{Index: idx, Value: a.Outcomes[i].Result}
		}
	}
	if p.got < n {
		m.parts[start] = p
		return answered{}, false
	}
	delete(m.parts, start)
	delete(m.pending, start)
	return answered{start: start, results: p.rs}, true
}

// chunkOf finds the pending chunk that holds input index: a whole answer
// names its chunk's first index; a part of one names its own first input,
// and chunks vary in size (big inputs end one early), so that is looked
// up among the chunks in flight (at most the window). m.mu is held.
func (m *mapping) chunkOf(index int) (start, n int, ok bool) {
	if n, ok := m.pending[index]; ok {
		return index, n, true
	}
	for s, n := range m.pending {
		if s <= index && index < s+n {
			return s, n, true
		}
	}
	return index, 0, false
}

// partial is a chunk whose answer arrives in parts.
type partial struct {
	rs   []Result
	have []bool
	got  int
}
