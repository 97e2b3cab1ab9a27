package consumer

import (
	"context"
	"encoding/json"
	"os"
	"time"

	"github.com/procq/procq/link"
	"github.com/procq/procq/task"
)

// announce keeps this worker's presence key fresh until ctx ends, then
// deletes it: a producer whose map has no live consumer fails the map
// instead of waiting for ever. A consumer that dies stops refreshing, and
// its key expires with the bucket's TTL.
func (w *Worker) announce(ctx context.Context) {
	host, _ := os.Hostname()
	val, _ := json.Marshal(task.Presence{Name: w.cfg.Name, PID: os.Getpid(), Host: host,
		Queue: w.queue, Run: w.cfg.Run, Started: time.Now().UTC()})
	key := task.PresenceKey(w.queue, w.cfg.Name)
	t := time.NewTicker(link.PresenceTTL / 4)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, link.PresenceTTL/4)
		if _, err := w.topo.Presence.Put(pctx, key, val); err != nil && ctx.Err() == nil {
			w.log.InfoContext(ctx, "presence not refreshed", "error", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = w.topo.Presence.Delete(dctx, key)
			cancel()
			return
		case <-t.C:
		}
	}
}
