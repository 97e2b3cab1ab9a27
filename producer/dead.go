package producer

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// A task of the map that is dead-lettered fails its inputs in the map at
// once, whatever the reason. Most dead letters of a map's tasks are
// answered: the consumer stores the dead letter, then an answer giving
// each input its outcome (an input failed, the task could never run), and
// marks the dead letter so (protocol.HeaderAnswered). One that is not
// marked is never answered: its answer could not be stored (the results
// stream refused it for longer than the consumer's store timeout), so
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
	cons, err := m.pool.q.topo.Dead.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{protocol.DeadSubject(m.pool.q.name)},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		HeadersOnly:    true,
	})
	if err != nil {
		return nil, fmt.Errorf("watch the dead letters: %w", err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		h := msg.Headers()
		if h.Get(protocol.HeaderRun) != m.id || h.Get(protocol.HeaderAnswered) != "" {
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
