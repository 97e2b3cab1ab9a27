package consumer

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/procq/procq/protocol"
)

// announce keeps the worker's presence key (protocol.Presence) until ctx
// ends, refreshing it every PresenceTTL/4 with what the worker is doing,
// then removes it.
func (w *Worker) announce(ctx context.Context) {
	host, _ := os.Hostname()
	p := protocol.Presence{Name: w.cfg.Name, PID: os.Getpid(), Host: host,
		Queue: w.queue, Run: w.cfg.Run, Started: time.Now().UTC()}
	hb := protocol.Heartbeat{KV: w.topo.Presence, Key: protocol.PresenceKey(w.queue, w.cfg.Name),
		Every: protocol.PresenceTTL / 4, Grace: time.Second, What: "presence", Log: w.log}
	hb.Run(ctx, func() any {
		now := time.Now()
		p.Done, p.LastMinute, p.InHand, p.Seen = w.stats.done.Load(), w.stats.minute.count(now), w.InHand(), now.UTC()
		p.Task, p.Since = "", time.Time{}
		if j := w.stats.running.Load(); j != nil {
			p.Task, p.Since = j.kind, j.began.UTC()
		}
		return p
	})
}

// stats is what the worker's presence tells of its tasks. Keeping it
// costs a task no allocation: the running task is its job.
type stats struct {
	done    atomic.Int64
	minute  perSecond
	running atomic.Pointer[job] // the task started last, while it runs
}

func (s *stats) started(j *job) {
	j.began = time.Now()
	s.running.Store(j)
}

func (s *stats) finished(j *job) {
	s.done.Add(1)
	s.minute.add(time.Now())
	s.running.CompareAndSwap(j, nil)
}

// perSecond counts events per second over the last minute.
type perSecond struct {
	mu      sync.Mutex
	buckets [60]int64
	stamps  [60]int64 // the unix second each bucket counts
}

func (p *perSecond) add(now time.Time) {
	sec := now.Unix()
	i := sec % 60
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stamps[i] != sec {
		p.stamps[i], p.buckets[i] = sec, 0
	}
	p.buckets[i]++
}

// count is the events of the last 60 seconds.
func (p *perSecond) count(now time.Time) int64 {
	sec := now.Unix()
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for i := range p.buckets {
		if sec-p.stamps[i] < 60 {
			n += p.buckets[i]
		}
	}
	return n
}
