package consumer_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/procq/procq/consumer"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// A fired task delivered again after it ran to the end (its
// acknowledgement lost with a node) is dropped, not run again; one
// delivered again before it ran to the end runs. The state a lost
// acknowledgement leaves is made by hand: the task is fetched and not
// acknowledged, its claim is written as a consumer would have left it,
// and it is handed back.
func TestFiredTaskRedelivered(t *testing.T) {
	for _, tt := range []struct {
		name  string
		claim func(seq uint64) string
		runs  int64
	}{
		{"ran to the end", func(seq uint64) string { return strconv.FormatUint(seq, 10) + " done" }, 0},
		{"not to the end", func(seq uint64) string { return strconv.FormatUint(seq, 10) }, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const queue = "fired"
			f := setup(t, queue)
			ctx := context.Background()
			f.fire(t, queue, "count", "T1")
			// Taken off the queue's durable as a consumer would, then the
			// claim it would have written, then handed back.
			batch, err := f.topo.Consumer.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			var got jetstream.Msg
			for msg := range batch.Messages() {
				got = msg
			}
			if got == nil {
				t.Fatal("the fired task never reached the queue")
			}
			meta, err := got.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.topo.Fired.Create(ctx, protocol.FiredKey(queue, "T1"), []byte(tt.claim(meta.Sequence.Stream))); err != nil {
				t.Fatal(err)
			}
			if err := got.Nak(); err != nil {
				t.Fatal(err)
			}
			reg, runs := countingReg()
			f.startRun(t, queue, "R")
			f.sentinel(t, queue, "R")
			if err := f.run(t, reg, consumer.Config{Name: "C-1"}); err != nil {
				t.Fatal(err)
			}
			if n := runs.Load(); n != tt.runs {
				t.Errorf("the redelivered fired task ran %d times, want %d", n, tt.runs)
			}
			if n, err := protocol.Count(ctx, f.topo.Tasks, protocol.WorkSubject(queue, "R")); err != nil || n != 0 {
				t.Errorf("%d tasks left in the queue (%v), want 0", n, err)
			}
			if tt.runs == 1 {
				e, err := f.topo.Fired.Get(ctx, protocol.FiredKey(queue, "T1"))
				if err != nil || string(e.Value()) != strconv.FormatUint(meta.Sequence.Stream, 10)+" done" {
					t.Errorf("claim after the run: %v, %v; want it marked done", e, err)
				}
			}
		})
	}
}

// A firing is counted once: two copies of it (sourced twice) give one
// procq_schedule_fired_total and one lateness sample, the copy dropped
// counted nowhere.
func TestFiredTaskMetrics(t *testing.T) {
	const queue = "firedm"
	f := setup(t, queue)
	due := time.Now().Add(-2 * time.Second)
	for range 2 {
		f.fire(t, queue, "count", "T2", protocol.HeaderDue, due.UTC().Format(time.RFC3339Nano))
	}
	reg, runs := countingReg()
	promReg := prometheus.NewPedanticRegistry()
	metrics, _ := consumer.NewWorkerMetrics(promReg, queue)
	f.startRun(t, queue, "R")
	f.sentinel(t, queue, "R")
	if err := f.run(t, reg, consumer.Config{Name: "C-1", Events: metrics}); err != nil {
		t.Fatal(err)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("a firing sourced twice ran %d times, want once", n)
	}
	families, err := promReg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() != "procq_schedule_fired_total" {
			continue
		}
		if len(fam.GetMetric()) != 1 || fam.GetMetric()[0].GetCounter().GetValue() != 1 {
			t.Errorf("procq_schedule_fired_total: %v, want one series at 1", fam.GetMetric())
		}
	}
	for _, fam := range families {
		if fam.GetName() != "procq_schedule_lateness_seconds" {
			continue
		}
		h := fam.GetMetric()[0].GetHistogram()
		if h.GetSampleCount() != 1 || h.GetSampleSum() < 2 || h.GetSampleSum() > 30 {
			t.Errorf("lateness histogram: %d samples summing %vs, want one of at least 2s", h.GetSampleCount(), h.GetSampleSum())
		}
		return
	}
	t.Error("no procq_schedule_lateness_seconds")
}

// A fired task that can never run (here: a kind nobody registered) is
// dead-lettered like any task: the broker's own headers of a fired copy
// are left out of the dead letter, which the broker would refuse.
func TestFiredTaskDeadLettered(t *testing.T) {
	const queue = "fireddead"
	f := setup(t, queue)
	ctx := context.Background()
	f.fire(t, queue, "nobody", "T3")
	f.startRun(t, queue, "R")
	f.sentinel(t, queue, "R")
	if err := f.run(t, task.NewRegistry(), consumer.Config{Name: "C-1"}); err != nil {
		t.Fatal(err)
	}
	dls := deadLetters(t, f, queue)
	if len(dls) != 1 || dls[0].Header.Get(protocol.HeaderTaskID) != "T3" || dls[0].Header.Get("Nats-Stream-Source") != "" {
		t.Fatalf("dead letters %v, want the fired task's, without the broker's headers", dls)
	}
	if n, err := protocol.Count(ctx, f.topo.Tasks, protocol.WorkSubject(queue, "R")); err != nil || n != 0 {
		t.Errorf("%d tasks left in the queue (%v), want 0", n, err)
	}
}

// A claim the broker cannot record for a while (here: no claims bucket
// for 2 s) is tried again with the task's lease held, not handed back
// delivery after delivery until max_deliver dead-letters a task that never
// ran.
func TestFiredTaskClaimWaits(t *testing.T) {
	const queue = "firedwait"
	f := setup(t, queue)
	ctx := context.Background()
	if err := f.js.DeleteKeyValue(ctx, protocol.FiredBucket); err != nil {
		t.Fatal(err)
	}
	f.fire(t, queue, "count", "T4")
	reg, runs := countingReg()
	f.startRun(t, queue, "R")
	f.sentinel(t, queue, "R")
	done := make(chan error, 1)
	go func() { done <- f.runWorker(reg, consumer.Config{Name: "C-1", MaxDeliver: 2}) }()
	time.Sleep(2 * time.Second)
	if n := runs.Load(); n != 0 {
		t.Fatalf("the fired task ran %d times without a claim", n)
	}
	if _, err := f.js.CreateKeyValue(ctx, protocol.FiredBucketConfig(1)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("the fired task ran %d times once its claim was recorded, want once", n)
	}
	if dls := deadLetters(t, f, queue); len(dls) != 0 {
		t.Errorf("%d dead letters, want none", len(dls))
	}
}

// fire puts a firing of kind with the task id on queue's run R as the
// broker would: on its fire subject in PROCQ_SCHED, sourced on to the
// queue (so it carries Nats-Stream-Source). hdr are more headers, name
// and value.
func (f *fixture) fire(t *testing.T, queue, kind, id string, hdr ...string) {
	t.Helper()
	m := nats.NewMsg(protocol.FireSubject(protocol.WorkSubject(queue, "R")))
	m.Header.Set(protocol.HeaderKind, kind)
	m.Header.Set(protocol.HeaderTaskID, id)
	for i := 0; i+1 < len(hdr); i += 2 {
		m.Header.Set(hdr[i], hdr[i+1])
	}
	m.Data = []byte(`1`)
	if _, err := f.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// countingReg is a registry whose kind "count" counts its runs.
func countingReg() (*task.Registry, *atomic.Int64) {
	runs := &atomic.Int64{}
	reg := task.NewRegistry()
	task.MustRegister(reg, "count", func(ctx context.Context, n int) (int, error) { runs.Add(1); return n, nil })
	return reg, runs
}
