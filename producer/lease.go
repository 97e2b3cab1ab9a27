package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/protocol"
)

// A running map keeps a lease in the runs bucket, under
// "<queue>.map.<id>", refreshed every leaseBeat. A producer that starts a
// run removes what maps whose producer is gone left behind: their queued
// tasks (nobody would read their results) and their results. A map's
// producer is gone when, on the same host, its pid no longer runs, or,
// anywhere, its lease was not refreshed for leaseStale by the server's
// clock and still is not after another look.
const (
	leaseBeat  = 2 * time.Second
	leaseStale = 10 * time.Second
)

// keepLease holds the map's lease until ctx ends, then removes it. Each
// refresh carries the map's progress, for the inspection tools.
func (m *mapping) keepLease(ctx context.Context) {
	q := m.pool.q
	host, _ := os.Hostname()
	lease := protocol.MapLease{Subject: m.subject, Results: protocol.ResultSubject(m.id), PID: os.Getpid(), Host: host,
		Kind: m.kind, Started: time.Now().UTC()}
	hb := protocol.Heartbeat{KV: q.topo.Runs, Key: protocol.MapLeaseKey(q.name, m.id),
		Every: leaseBeat, Grace: 5 * time.Second, What: "map lease", Log: q.log}
	hb.Run(ctx, func() any {
		lease.Submitted, lease.Done, lease.Total = m.progress.submitted.Load(), m.progress.done.Load(), m.progress.total.Load()
		return lease
	})
}

// progress is how far a map has got, read by its lease keeper.
type progress struct {
	submitted, done atomic.Int64
	total           atomic.Int64 // -1 until the publisher is done
}

// Reap removes what the maps of abandoned producers left on the queue:
// their queued tasks and their results. Begin calls it. It waits at most
// about leaseStale for a map that only looks abandoned to show a sign of
// life, and logs what it waits for.
func (q *TaskQueue) Reap(ctx context.Context) error {
	now, err := protocol.BrokerNow(ctx, q.js, "KV_"+protocol.RunsBucket)
	if err != nil {
		return err
	}
	lister, err := q.topo.Runs.ListKeysFiltered(ctx, q.name+".map.*")
	if err != nil {
		return fmt.Errorf("list map leases: %w", err)
	}
	host, _ := os.Hostname()
	suspects := map[string]uint64{}
	for key := range lister.Keys() {
		e, err := q.topo.Runs.Get(ctx, key)
		if err != nil {
			continue // removed meanwhile
		}
		var l protocol.MapLease
		_ = json.Unmarshal(e.Value(), &l)
		switch {
		case l.Host == host && l.PID > 0 && l.PID != os.Getpid() && !pidAlive(l.PID):
			q.reap(ctx, key, l, "its producer (pid "+fmt.Sprint(l.PID)+") is gone")
		case now.Sub(e.Created()) > leaseStale:
			suspects[key] = e.Revision()
		}
	}
	if len(suspects) == 0 {
		return nil
	}
	q.log.InfoContext(ctx, "maps look abandoned; waiting for a sign of life", "maps", len(suspects),
		"waiting_for", "their producers to refresh their leases", "timeout", 2*leaseBeat)
	if err := demo.Sleep(ctx, 2*leaseBeat); err != nil {
		return err
	}
	for key, rev := range suspects {
		e, err := q.topo.Runs.Get(ctx, key)
		if err != nil || e.Revision() != rev {
			continue // removed or refreshed: alive
		}
		var l protocol.MapLease
		_ = json.Unmarshal(e.Value(), &l)
		q.reap(ctx, key, l, "its lease was not refreshed")
	}
	return nil
}

// reap removes an abandoned map's tasks, results and lease.
func (q *TaskQueue) reap(ctx context.Context, key string, l protocol.MapLease, why string) {
	id := strings.TrimPrefix(key, q.name+".map.")
	tasks := q.count(ctx, q.topo.Tasks, l.Subject)
	results := q.count(ctx, q.topo.Results, l.Results)
	var errs []error
	if protocol.IsWorkSubject(q.name, l.Subject) {
		// Its delayed tasks first (they would fire for nobody), then its queued ones.
		errs = append(errs, q.purgeDelayed(ctx, l.Subject))
		errs = append(errs, q.topo.Tasks.Purge(ctx, jetstream.WithPurgeSubject(l.Subject)))
	}
	if strings.HasPrefix(l.Results, protocol.ResultsPrefix+".") {
		errs = append(errs, q.topo.Results.Purge(ctx, jetstream.WithPurgeSubject(l.Results)))
	}
	errs = append(errs, q.topo.Runs.Purge(ctx, key))
	if err := errors.Join(errs...); err != nil {
		q.log.WarnContext(ctx, "remove abandoned map", "map", id, "error", err)
		return
	}
	q.log.WarnContext(ctx, "removed abandoned map", "map", id, "why", why, "tasks", tasks, "results", results)
}

// count is how many messages stream holds on subject (-1 if unknown).
func (q *TaskQueue) count(ctx context.Context, s jetstream.Stream, subject string) int64 {
	n, err := protocol.Count(ctx, s, subject)
	if err != nil {
		return -1
	}
	return int64(n)
}
