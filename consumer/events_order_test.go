package consumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/procq/procq/consumer"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// orderEvents records what a worker told it, per kind; its DeadLettered
// waits a little before it records, which widens the window in which an
// answer published before it would show.
type orderEvents struct {
	mu       sync.Mutex
	started  map[string]int
	finished map[string][]consumer.Ending
	dead     map[string]int
}

func newOrderEvents() *orderEvents {
	return &orderEvents{started: map[string]int{}, finished: map[string][]consumer.Ending{}, dead: map[string]int{}}
}

func (e *orderEvents) TaskStarted(kind string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.started[kind]++
}

func (e *orderEvents) TaskFinished(kind string, o consumer.Ending, _ time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.finished[kind] = append(e.finished[kind], o)
}

func (e *orderEvents) DeadLettered(kind string) {
	time.Sleep(50 * time.Millisecond)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dead[kind]++
}

func (e *orderEvents) TaskFired(string, time.Duration) {}

// seen is what the events say of kind now.
func (e *orderEvents) seen(kind string) (finished []consumer.Ending, dead int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.finished[kind]), e.dead[kind]
}

// The counters that describe a task (finished, with its outcome, and
// dead-lettered) are told before its answer is published, and its dead
// letter is stored by then: a producer whose map ends with that answer,
// reading the consumers' counters and dead letters right away, finds
// every one of them. A subscriber on the results subject checks at the
// moment each answer arrives. Every task has a kind of its own, so that
// the events name it: failing ones (an input fails for good), succeeding
// ones, and rejected ones (a kind the worker does not know, answered with
// the error and dead-lettered without running).
func TestTaskCountedBeforeItsAnswer(t *testing.T) {
	const q, run = "order", "m1"
	f := setup(t, q)
	reply := protocol.ResultSubject(run)
	const tasks = 12
	kindOf := func(i int) string {
		switch i % 3 {
		case 0:
			return fmt.Sprintf("fail%d", i)
		case 1:
			return fmt.Sprintf("ok%d", i)
		}
		return fmt.Sprintf("unknown%d", i) // not registered: rejected
	}
	reg := task.NewRegistry()
	for i := range tasks {
		var h task.HandlerFunc
		switch i % 3 {
		case 0:
			h = func(context.Context, json.RawMessage) (json.RawMessage, error) { return nil, errors.New("no good") }
		case 1:
			h = func(context.Context, json.RawMessage) (json.RawMessage, error) { return json.RawMessage("1"), nil }
		default:
			continue
		}
		if err := reg.Register(kindOf(i), h); err != nil {
			t.Fatal(err)
		}
	}

	ev := newOrderEvents()
	var (
		mu       sync.Mutex
		problems []string
		answered = map[int]int{}
	)
	sub, err := f.js.Conn().Subscribe(reply, func(m *nats.Msg) {
		answers, err := protocol.DecodeAnswers(m.Data, 0)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			problems = append(problems, fmt.Sprintf("result %s: %v", m.Data, err))
			return
		}
		for _, a := range answers {
			answered[a.Index]++
			kind := kindOf(a.Index)
			finished, dead := ev.seen(kind)
			// Checked when the answer arrives, against what a producer
			// would read then.
			switch a.Index % 3 {
			case 0:
				if len(finished) != 1 || finished[0] != consumer.Failed || dead != 1 {
					problems = append(problems, fmt.Sprintf("answer of %s arrived when the events said finished %v, dead-lettered %d; want [failed], 1", kind, finished, dead))
				}
				if n := deadLettersOf(f, q, kind); n != 1 {
					problems = append(problems, fmt.Sprintf("answer of %s arrived with %d dead letters stored, want 1", kind, n))
				}
			case 1:
				if len(finished) != 1 || finished[0] != consumer.Succeeded || dead != 0 {
					problems = append(problems, fmt.Sprintf("answer of %s arrived when the events said finished %v, dead-lettered %d; want [succeeded], 0", kind, finished, dead))
				}
			default:
				if len(finished) != 0 || dead != 1 {
					problems = append(problems, fmt.Sprintf("answer of rejected %s arrived when the events said finished %v, dead-lettered %d; want [], 1", kind, finished, dead))
				}
				if n := deadLettersOf(f, q, kind); n != 1 {
					problems = append(problems, fmt.Sprintf("answer of rejected %s arrived with %d dead letters stored, want 1", kind, n))
				}
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := f.js.Conn().Flush(); err != nil {
		t.Fatal(err)
	}

	ws := protocol.WorkSubject(q, run)
	for i := range tasks {
		f.publish(t, ws, map[string]string{protocol.HeaderKind: kindOf(i), protocol.HeaderReply: reply,
			protocol.HeaderRun: run, protocol.HeaderIndex: fmt.Sprint(i)}, `{}`)
	}
	f.startRun(t, q, run)
	f.sentinel(t, q, run)
	if err := f.run(t, reg, consumer.Config{Name: "C-1", Concurrency: 4, Events: ev}); err != nil {
		t.Fatal(err)
	}
	// The worker stored every answer before it took its sentinel; the
	// subscriber has them once a round trip has passed.
	if err := f.js.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(answered)
		mu.Unlock()
		if n == tasks || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
	for i := range tasks {
		if answered[i] != 1 {
			t.Errorf("task %d answered %d times, want once", i, answered[i])
		}
	}
	// And in the end, each counted exactly once.
	for i := range tasks {
		kind := kindOf(i)
		finished, dead := ev.seen(kind)
		wantDead := 0
		if i%3 != 1 {
			wantDead = 1
		}
		if dead != wantDead || deadLettersOf(f, q, kind) != wantDead {
			t.Errorf("%s: dead-lettered %d times, %d dead letters; want %d", kind, dead, deadLettersOf(f, q, kind), wantDead)
		}
		if i%3 == 2 && len(finished) != 0 || i%3 != 2 && len(finished) != 1 {
			t.Errorf("%s: finished %v", kind, finished)
		}
	}
}

// deadLettersOf counts the dead letters of queue whose task was of kind.
func deadLettersOf(f *fixture, queue, kind string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := f.topo.Dead.Info(ctx)
	if err != nil || info.State.Msgs == 0 {
		return 0
	}
	n := 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := f.topo.Dead.GetMsg(ctx, seq)
		if err == nil && m.Subject == protocol.DeadSubject(queue) && m.Header.Get(protocol.HeaderKind) == kind {
			n++
		}
	}
	return n
}
