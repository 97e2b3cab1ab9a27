package ops

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector is the broker's Prometheus collector: at every scrape it
// reads a Snapshot from JetStream and reports each queue and each procq
// stream.
type Collector struct {
	js      jetstream.JetStream
	timeout time.Duration
	log     *slog.Logger
}

// NewCollector returns the collector; a scrape waits at most timeout for
// the broker.
func NewCollector(js jetstream.JetStream, timeout time.Duration, logger *slog.Logger) *Collector {
	return &Collector{js: js, timeout: timeout, log: logger}
}

var (
	queueLabels  = []string{"queue"}
	streamLabels = []string{"stream"}

	descPending     = prometheus.NewDesc("procq_queue_pending", "Tasks queued and not yet delivered.", queueLabels, nil)
	descInFlight    = prometheus.NewDesc("procq_queue_in_flight", "Tasks delivered to a consumer and not yet settled.", queueLabels, nil)
	descRedelivered = prometheus.NewDesc("procq_queue_redelivered", "In-flight tasks delivered more than once.", queueLabels, nil)
	descWaiting     = prometheus.NewDesc("procq_queue_waiting_pulls", "Pull requests waiting: idle consumer capacity.", queueLabels, nil)
	descDead        = prometheus.NewDesc("procq_queue_dead_letters", "Dead letters kept for the queue.", queueLabels, nil)
	descOldest      = prometheus.NewDesc("procq_queue_oldest_pending_seconds", "Age of the oldest unfinished task; 0 when none.", queueLabels, nil)
	descConsumers   = prometheus.NewDesc("procq_queue_consumers", "Live consumer processes of the queue (their heartbeats).", queueLabels, nil)
	descLastMinute  = prometheus.NewDesc("procq_queue_tasks_last_minute", "Task messages the queue's consumers ran in the last minute.", queueLabels, nil)
	descMsgs        = prometheus.NewDesc("procq_stream_messages", "Messages in a procq stream.", streamLabels, nil)
	descBytes       = prometheus.NewDesc("procq_stream_bytes", "Bytes in a procq stream.", streamLabels, nil)
	descReplicas    = prometheus.NewDesc("procq_stream_replicas", "A stream's configured replicas.", streamLabels, nil)
	descCurrent     = prometheus.NewDesc("procq_stream_replicas_current", "A stream's replicas that are up to date, its leader included.", streamLabels, nil)
	descLeader      = prometheus.NewDesc("procq_stream_leader", "1 for the node that leads the stream (in a cluster).", []string{"stream", "leader"}, nil)
	descPaused      = prometheus.NewDesc("procq_queue_paused", "1 while the queue is paused (broker queue pause).", queueLabels, nil)
	descScheduled   = prometheus.NewDesc("procq_scheduled_tasks", "Delayed tasks of the queue not fired yet.", queueLabels, nil)
	descUnique      = prometheus.NewDesc("procq_queue_unique_keys", "Unique keys the queue's tasks hold (procq.Unique, put --unique).", queueLabels, nil)
	descNextFire    = prometheus.NewDesc("procq_schedule_next_fire_timestamp_seconds", "When a periodic schedule fires next (Unix time).", []string{"schedule", "queue"}, nil)
	descTimedOut    = prometheus.NewDesc("procq_tasks_timed_out_total", "Tasks of the queue stopped at their time limit.", queueLabels, nil)
	descCancelled   = prometheus.NewDesc("procq_tasks_cancelled_total", "Tasks of the queue cancelled before or while they ran.", queueLabels, nil)
	descDuplicate   = prometheus.NewDesc("procq_tasks_duplicate_total", "Unique puts on the queue refused as duplicates.", queueLabels, nil)
	descUp          = prometheus.NewDesc("procq_status_up", "1 when the last scrape could read the broker's state.", nil, nil)
	descLevelTasks  = prometheus.NewDesc("procq_queue_tasks", "The queue's tasks by priority (high, default, low) and state: pending (queued, not yet delivered; the default level's sentinels too) or in_flight (delivered, not yet settled).",
		[]string{"queue", "priority", "state"}, nil)
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPending, descInFlight, descRedelivered, descWaiting, descDead, descOldest,
		descConsumers, descLastMinute, descScheduled, descUnique, descNextFire, descPaused, descMsgs, descBytes, descReplicas, descCurrent, descLeader,
		descTimedOut, descCancelled, descDuplicate, descUp, descLevelTasks} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	st, err := Snapshot(ctx, c.js)
	if err != nil {
		c.log.Warn("metrics: broker state not read", "error", err)
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, q := range st.Queues {
		g(descPending, float64(q.Pending), q.Name)
		g(descInFlight, float64(q.InFlight), q.Name)
		g(descRedelivered, float64(q.Redelivered), q.Name)
		g(descWaiting, float64(q.Waiting), q.Name)
		g(descDead, float64(q.Dead), q.Name)
		g(descOldest, q.OldestAge.Seconds(), q.Name)
		g(descConsumers, float64(q.Consumers), q.Name)
		g(descLastMinute, float64(q.LastMinute), q.Name)
		g(descScheduled, float64(q.Scheduled), q.Name)
		g(descUnique, float64(q.UniqueKeys), q.Name)
		paused := 0.0
		if q.PausedUntil != nil {
			paused = 1
		}
		g(descPaused, paused, q.Name)
		for d, v := range map[*prometheus.Desc]int64{descTimedOut: q.TimedOut, descCancelled: q.Cancelled, descDuplicate: q.Duplicates} {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), q.Name)
		}
		for _, l := range q.Priorities {
			g(descLevelTasks, float64(l.Pending), q.Name, string(l.Priority), "pending")
			g(descLevelTasks, float64(l.InFlight), q.Name, string(l.Priority), "in_flight")
		}
	}
	for _, e := range st.Schedules {
		g(descNextFire, float64(e.Next.Unix()), e.Name, e.Queue)
	}
	for _, s := range st.Streams {
		g(descMsgs, float64(s.Messages), s.Name)
		g(descBytes, float64(s.Bytes), s.Name)
		g(descReplicas, float64(s.Replicas), s.Name)
		g(descCurrent, float64(s.Current), s.Name)
		if s.Leader != "" {
			g(descLeader, 1, s.Name, s.Leader)
		}
	}
}
