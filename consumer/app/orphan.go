package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// ErrOrphaned says a spawned consumer's producer died: the consumer stops
// and exits 1.
var ErrOrphaned = errors.New("orphaned: the producer that spawned this consumer is gone")

// watchParent returns a context that ends when this process's parent is no
// longer the one that started it (the parent died and the process was
// re-parented). On Linux the producer also has the kernel send SIGTERM at
// its death. stop ends the watch and returns an ErrOrphaned error if the
// parent is gone, whichever way the process learnt it.
func watchParent(ctx context.Context, log *slog.Logger) (context.Context, func() error) {
	parent := os.Getppid()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if os.Getppid() != parent {
					cancel()
					return
				}
			}
		}
	}()
	return ctx, func() error {
		cancel()
		<-done
		if os.Getppid() == parent {
			return nil
		}
		err := fmt.Errorf("%w (pid %d)", ErrOrphaned, parent)
		log.Error("producer gone; stopped", "error", err)
		return err
	}
}
