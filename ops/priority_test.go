package ops_test

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/ops"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/schedule"
)

// Status and the broker's metrics count a queue's tasks per priority:
// the totals add every level up, each level shows its own, and a delayed
// task of any level counts among the queue's scheduled ones. Pausing the
// queue pauses every level.
func TestStatusPerPriority(t *testing.T) {
	b := natstest.Start(t)
	js := b.JetStream(t)
	ctx := t.Context()
	topo, err := protocol.EnsureQueue(ctx, js, protocol.QueueConfig{Name: "pq"})
	if err != nil {
		t.Fatal(err)
	}
	put := func(p protocol.Priority, n int) {
		for range n {
			m := nats.NewMsg(protocol.LevelSubject("pq", "R", p))
			m.Header.Set(protocol.HeaderKind, "k")
			if _, err := js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(protocol.PriorityHigh, 2)
	put(protocol.PriorityDefault, 3)
	put(protocol.PriorityLow, 4)
	// One high task in flight: taken, not settled.
	batch, err := topo.Levels[protocol.PriorityHigh.Rank()].FetchNoWait(1)
	if err != nil {
		t.Fatal(err)
	}
	for range batch.Messages() {
	}
	delayed := nats.NewMsg(protocol.LevelSubject("pq", "R", protocol.PriorityLow))
	delayed.Header.Set(protocol.HeaderKind, "k")
	schedule.Delay(delayed, time.Now().Add(time.Hour))
	if _, err := js.PublishMsg(ctx, delayed); err != nil {
		t.Fatal(err)
	}

	st, err := ops.Snapshot(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Queues) != 1 {
		t.Fatalf("queues %+v, want pq alone", st.Queues)
	}
	q := st.Queues[0]
	want := []ops.PriorityStatus{{Priority: "high", Pending: 1, InFlight: 1}, {Priority: "default", Pending: 3}, {Priority: "low", Pending: 4}}
	if q.Name != "pq" || q.Pending != 8 || q.InFlight != 1 || q.Scheduled != 1 || !slices.Equal(q.Priorities, want) || !q.Prioritised() {
		t.Errorf("queue %+v, want pq with 8 pending, 1 in flight, 1 scheduled, by priority %+v", q, want)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(ops.NewCollector(js, 10*time.Second, slog.New(slog.DiscardHandler)))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		switch f.GetName() {
		case "procq_queue_tasks":
			for _, m := range f.GetMetric() {
				l := map[string]string{}
				for _, p := range m.GetLabel() {
					l[p.GetName()] = p.GetValue()
				}
				got[l["queue"]+" "+l["priority"]+" "+l["state"]] = gauge(m)
			}
		case "procq_queue_pending":
			got["pending"] = gauge(f.GetMetric()[0])
		}
	}
	wantMetrics := map[string]float64{"pq high pending": 1, "pq high in_flight": 1, "pq default pending": 3,
		"pq default in_flight": 0, "pq low pending": 4, "pq low in_flight": 0, "pending": 8}
	for k, v := range wantMetrics {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}

	if err := ops.PauseQueue(ctx, js, "pq", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, p := range protocol.Priorities() {
		info, err := topo.Levels[p.Rank()].Info(ctx)
		if err != nil || !info.Paused {
			t.Errorf("%s durable after pause: paused %v, %v", p, info != nil && info.Paused, err)
		}
	}
	if err := ops.ResumeQueue(ctx, js, "pq"); err != nil {
		t.Fatal(err)
	}
	for _, p := range protocol.Priorities() {
		info, err := topo.Levels[p.Rank()].Info(ctx)
		if err != nil || info.Paused {
			t.Errorf("%s durable after resume: paused %v, %v", p, info != nil && info.Paused, err)
		}
	}
}
