package producer

import (
	"context"
	"fmt"
	"time"

	"github.com/procq/procq/demo"
)

// WaitReady waits until at least n pull requests wait on the queue's
// consumer: an idle consumer process keeps one waiting, so n idle consumers
// are connected, and a map timed from now measures work, not start-up.
func (q *TaskQueue) WaitReady(ctx context.Context, n int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		info, err := q.topo.Consumer.Info(ctx)
		if err == nil && info.NumWaiting >= n {
			return nil
		}
		if err := demo.Sleep(ctx, 20*time.Millisecond); err != nil {
			waiting := 0
			if info != nil {
				waiting = info.NumWaiting
			}
			return fmt.Errorf("wait for %d idle consumers (%d ready): %w", n, waiting, err)
		}
	}
}
