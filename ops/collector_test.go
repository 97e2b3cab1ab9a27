package ops_test

import (
	"log/slog"
	"maps"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/msgq"
	"github.com/procq/procq/ops"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/schedule"
	"github.com/procq/procq/unique"
)

// The broker's metrics count each queue's delayed tasks and give each
// schedule's next firing, read from PROCQ_SCHED at the scrape.
func TestCollectorSchedules(t *testing.T) {
	b := natstest.Start(t)
	js := b.JetStream(t)
	ctx := t.Context()
	for _, q := range []string{"mq", "other"} {
		if _, err := protocol.EnsureQueue(ctx, js, protocol.QueueConfig{Name: q}); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		m := nats.NewMsg(protocol.WorkSubject("mq", "R"))
		m.Header.Set(protocol.HeaderKind, "k")
		m.Data = []byte(`1`)
		schedule.Delay(m, time.Now().Add(time.Hour))
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	spec := schedule.Spec{Name: "tick", Queue: "other", Kind: "k", Every: time.Hour}
	if err := schedule.Add(ctx, js, spec); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(ops.NewCollector(js, 10*time.Second, slog.New(slog.DiscardHandler)))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	value := func(name string, labels map[string]string) (float64, bool) {
		for _, f := range families {
			if f.GetName() != name {
				continue
			}
		metrics:
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
						continue metrics
					}
				}
				return gauge(m), true
			}
		}
		return 0, false
	}
	if v, ok := value("procq_scheduled_tasks", map[string]string{"queue": "mq"}); !ok || v != 3 {
		t.Errorf("procq_scheduled_tasks{queue=mq} = %v (%v), want 3", v, ok)
	}
	if v, ok := value("procq_scheduled_tasks", map[string]string{"queue": "other"}); !ok || v != 0 {
		t.Errorf("procq_scheduled_tasks{queue=other} = %v (%v), want 0", v, ok)
	}
	next, ok := value("procq_schedule_next_fire_timestamp_seconds", map[string]string{"schedule": "tick", "queue": "other"})
	if d := time.Until(time.Unix(int64(next), 0)); !ok || d < 58*time.Minute || d > 61*time.Minute {
		t.Errorf("tick's next firing in %v (%v), want in about an hour", d, ok)
	}
}

func gauge(m *dto.Metric) float64 { return m.GetGauge().GetValue() }

// The status and the metrics count the unique keys each queue's tasks
// and each message queue's items hold, and none of a queue without.
func TestUniqueKeysCounted(t *testing.T) {
	b := natstest.Start(t)
	js := b.JetStream(t)
	ctx := t.Context()
	for _, q := range []string{"uq", "none"} {
		if _, err := protocol.EnsureQueue(ctx, js, protocol.QueueConfig{Name: q}); err != nil {
			t.Fatal(err)
		}
	}
	mq, err := msgq.Open(ctx, js, "umq", msgq.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	locks := unique.NewBucket(js, 1, nil)
	for _, k := range []string{"a", "b", "c:d"} {
		if _, err := locks.Claim(ctx, nats.NewMsg("x"), "uq", protocol.UniqueTaskKey("uq", k), k, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := mq.PutJSONWith(ctx, []byte(`1`), protocol.TaskOptions{Unique: "a", UniqueFor: time.Hour}); err != nil {
		t.Fatal(err)
	}
	st, err := ops.Snapshot(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, q := range st.Queues {
		got["queue "+q.Name] = q.UniqueKeys
	}
	for _, q := range st.MsgQueues {
		got["message queue "+q.Name] = q.UniqueKeys
	}
	if want := map[string]int{"queue uq": 3, "queue none": 0, "message queue umq": 1}; !maps.Equal(got, want) {
		t.Errorf("unique keys %v, want %v", got, want)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(ops.NewCollector(js, 10*time.Second, slog.New(slog.DiscardHandler)))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	metric := map[string]float64{}
	for _, f := range families {
		if f.GetName() == "procq_queue_unique_keys" {
			for _, m := range f.GetMetric() {
				metric[m.GetLabel()[0].GetValue()] = gauge(m)
			}
		}
	}
	if want := map[string]float64{"uq": 3, "none": 0}; !maps.Equal(metric, want) {
		t.Errorf("procq_queue_unique_keys %v, want %v", metric, want)
	}
}
