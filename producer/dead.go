package producer

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/link"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// A task of the map whose answer will never come fails its inputs in the
// map at once. Most dead letters of a map's tasks are answered: the
// consumer stores the dead letter, then an answer giving each input its
// outcome (an input failed, the task could never run). One whose answer
// could not be stored (the results stream refused it for longer than the
// consumer's store timeout) is marked so (protocol.HeaderUnanswered), and
// the map learns of it from the dead-letter stream alone.

// deadTask is a dead letter of one of the map's tasks that no answer
// follows.
type deadTask struct {
	index  int // the task's first input
	reason string
}

// watchDead reads the queue's dead letters from now on, headers only,
// and queues for collect (deadQ, deads) those of the map's tasks that no
// answer follows, until the returned function is called. It is started
// before the first task is put, so none of the map's is missed.
func (m *mapping) watchDead(ctx context.Context) (stop func(), err error) {
	m.deads = make(chan struct{}, 1)
	dead := m.pool.q.topo.Dead
	// From the stream's next sequence, not "new": nats.go makes an ordered
	// consumer again after a reconnect, from the last message delivered,
	// and with none delivered yet (dead letters are rare) "new" would skip
	// what was stored meanwhile. A cluster electing its leaders, or a link
	// noticed silent, is waited for as the other readers do.
	cons, err := link.Retry(ctx, m.pool.q.PutTimeout, m.pool.log, func(ctx context.Context) (jetstream.Consumer, error) {
		info, err := dead.Info(ctx)
		if err != nil {
			return nil, err
		}
		return dead.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{protocol.DeadSubject(m.pool.q.name)},
			DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
			OptStartSeq:    info.State.LastSeq + 1,
			HeadersOnly:    true,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("watch the dead letters: %w", err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		h := msg.Headers()
		if h.Get(protocol.HeaderRun) != m.id || h.Get(protocol.HeaderUnanswered) == "" {
			return
		}
		index, err := protocol.ParseIndex(h.Get(protocol.HeaderIndex))
		if err != nil {
			m.pool.log.Warn("dead letter of the map without its index ignored", "map", m.id, "error", err)
			return
		}
		m.mu.Lock()
		m.deadQ = append(m.deadQ, deadTask{index: index, reason: h.Get(protocol.HeaderError)})
		m.mu.Unlock()
		select {
		case m.deads <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return nil, fmt.Errorf("watch the dead letters: %w", err)
	}
	return cc.Stop, nil
}

// deadAnswers takes the dead letters queued by watchDead and makes each
// an answer that fails the task's inputs still without a result with its
// reason.
func (m *mapping) deadAnswers() []answered {
	m.mu.Lock()
	q := m.deadQ
	m.deadQ = nil
	m.mu.Unlock()
	var out []answered
	for _, d := range q {
		m.mu.Lock()
		n, ok := m.pending[d.index]
		m.mu.Unlock()
		if !ok {
			continue // answered already
		}
		m.pool.log.Warn("task dead-lettered unanswered: its inputs fail", "map", m.id, "index", d.index, "inputs", n, "reason", d.reason)
		outs := make([]task.Outcome, n)
		for i := range outs {
			outs[i].Error = "dead-lettered: " + d.reason
		}
		if a, ok := m.accept(protocol.Answer{Index: d.index, Outcomes: outs}); ok {
			out = append(out, a)
		}
	}
	return out
}
