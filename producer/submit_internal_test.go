package producer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/procq/procq/demo"
	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/unique"
)

// A chunk that collect completed while its publish was still failing (a
// cancel answers an input at once; here a unique task whose key another
// task holds) gives its window back once, not twice: a second give-back
// panicked the publisher ("semaphore: released more than held") or took
// another chunk's slot.
func TestFailedSendCompletedMeanwhileReleasesOnce(t *testing.T) {
	b := natstest.Start(t)
	js := b.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topo, err := protocol.EnsureQueue(ctx, js, protocol.QueueConfig{Name: "pool", AckWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p := NewPool(NewTaskQueue("pool", js, topo, nil), PoolConfig{})
	defer func() { _ = p.Terminate(ctx) }()
	opts := protocol.TaskOptions{Unique: "k", UniqueFor: time.Minute}
	if _, err := p.ApplyWith(ctx, demo.KindSquare, demo.SquareArgs{X: 2}, opts); err != nil {
		t.Fatal(err) // holds the key: no worker runs it
	}
	// Cancel input 0 of every other map the moment it is pending.
	done := make(chan struct{})
	go func() {
		cancelled := map[string]bool{}
		for {
			select {
			case <-done:
				return
			default:
			}
			p.maps.Range(func(_, v any) bool {
				m := v.(*mapping)
				m.mu.Lock()
				_, pending := m.pending[0]
				m.mu.Unlock()
				if pending && !cancelled[m.id] {
					cancelled[m.id] = true
					_ = m.cancel(ctx, 0)
				}
				return true
			})
			time.Sleep(50 * time.Microsecond)
		}
	}()
	defer close(done)
	for range 20 {
		_, err := p.ApplyWith(ctx, demo.KindSquare, demo.SquareArgs{X: 3}, opts)
		var dup *unique.DuplicateError
		if err == nil || !errors.As(err, &dup) && !errors.Is(err, ErrCancelled) {
			t.Fatalf("second put of the key: %v, want a duplicate or a cancel", err)
		}
	}
}
