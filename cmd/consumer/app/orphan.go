package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/procq/procq/protocol"
)

// ErrOrphaned says a spawned consumer's producer died: the consumer stops
// and exits 1.
var ErrOrphaned = errors.New("orphaned: the producer that spawned this consumer is gone")

// watchParent returns a context that ends when the producer that spawned
// this process dies: the kernel sends SIGHUP then (the producer asks for it
// on Linux), and, anywhere, this process's parent changes when it is
// re-parented. stop ends the watch and returns an ErrOrphaned error if the
// producer died, whichever way the process learnt it.
func watchParent(ctx context.Context, log *slog.Logger) (context.Context, func() error) {
	parent := os.Getppid()
	ctx, cancel := context.WithCancel(ctx)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, protocol.OrphanSignal)
	done := make(chan struct{})
	orphaned := false
	go func() {
		defer close(done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				orphaned = true
				cancel()
				return
			case <-t.C:
				if os.Getppid() != parent {
					orphaned = true
					cancel()
					return
				}
			}
		}
	}()
	return ctx, func() error {
		cancel()
		<-done
		signal.Stop(hup)
		if !orphaned && os.Getppid() == parent {
			return nil
		}
		err := fmt.Errorf("%w (pid %d)", ErrOrphaned, parent)
		log.Error("producer gone; stopped", "error", err)
		return err
	}
}
