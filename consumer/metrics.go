package consumer

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// WorkerMetrics counts a consumer's tasks for Prometheus; it is the
// worker's Events.
type WorkerMetrics struct {
	started  *prometheus.CounterVec
	finished *prometheus.CounterVec
	dead     *prometheus.CounterVec
	duration *prometheus.HistogramVec
	fired    *prometheus.CounterVec
	lateness prometheus.Histogram
}

// Gauges is what a worker reports about itself at each scrape.
type Gauges interface {
	InHand() int
	Prefetch() int
}

// NewWorkerMetrics registers a consumer's metrics on reg: its task
// counters and durations for queue, its gauges read from g at each scrape
// (g may be set later with SetGauges), and the standard Go and process
// collectors (CPU, RSS, ...).
func NewWorkerMetrics(reg prometheus.Registerer, queue string) (*WorkerMetrics, *GaugeSource) {
	labels := prometheus.Labels{"queue": queue}
	m := &WorkerMetrics{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "procq_tasks_started_total",
			Help: "Task messages this consumer started to run.", ConstLabels: labels}, []string{"kind"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "procq_tasks_total",
			Help:        "Task messages this consumer ran, by outcome: succeeded, failed (for good), retried.",
			ConstLabels: labels}, []string{"kind", "outcome"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "procq_tasks_dead_lettered_total",
			Help: "Messages this consumer dead-lettered: failed for good, or never runnable.", ConstLabels: labels}, []string{"kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "procq_task_duration_seconds",
			Help: "How long task messages ran.", ConstLabels: labels,
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 12)}, []string{"kind"}),
		fired: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "procq_schedule_fired_total",
			Help: "Fired tasks this consumer took, by schedule (\"(delayed)\" for delayed tasks).", ConstLabels: labels},
			[]string{"schedule"}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "procq_schedule_lateness_seconds",
			Help:        "How late fired tasks with a due time started: start time minus due time.",
			ConstLabels: labels, Buckets: []float64{.01, .05, .1, .2, .25, .3, .5, 1, 2.5, 5, 10, 30, 60}}),
	}
	src := &GaugeSource{}
	reg.MustRegister(m.started, m.finished, m.dead, m.duration, m.fired, m.lateness,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "procq_tasks_in_hand",
			Help: "Task messages this consumer holds: running, or pulled ahead.", ConstLabels: labels},
			func() float64 { return src.read(Gauges.InHand) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "procq_prefetch",
			Help: "How many task messages this consumer may hold now.", ConstLabels: labels},
			func() float64 { return src.read(Gauges.Prefetch) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m, src
}

// GaugeSource is where the gauges are read: the worker, once built.
type GaugeSource struct{ g atomic.Pointer[Gauges] }

// Set makes g the source of the gauges.
func (s *GaugeSource) Set(g Gauges) { s.g.Store(&g) }

func (s *GaugeSource) read(f func(Gauges) int) float64 {
	if g := s.g.Load(); g != nil {
		return float64(f(*g))
	}
	return 0
}

func kindLabel(kind string) string {
	if kind == "" {
		return "(none)"
	}
	return kind
}

// TaskFired implements Events.
func (m *WorkerMetrics) TaskFired(schedule string, late time.Duration) {
	if schedule == "" {
		schedule = "(delayed)"
	}
	m.fired.WithLabelValues(schedule).Inc()
	if late >= 0 {
		m.lateness.Observe(late.Seconds())
	}
}

// TaskStarted implements Events.
func (m *WorkerMetrics) TaskStarted(kind string) { m.started.WithLabelValues(kindLabel(kind)).Inc() }

// TaskFinished implements Events.
func (m *WorkerMetrics) TaskFinished(kind string, outcome Ending, d time.Duration) {
	m.finished.WithLabelValues(kindLabel(kind), string(outcome)).Inc()
	m.duration.WithLabelValues(kindLabel(kind)).Observe(d.Seconds())
}

// DeadLettered implements Events.
func (m *WorkerMetrics) DeadLettered(kind string) { m.dead.WithLabelValues(kindLabel(kind)).Inc() }
