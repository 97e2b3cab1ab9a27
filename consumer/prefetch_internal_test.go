package consumer

import (
	"testing"
	"time"
)

// The window's arithmetic: its bounds, how it follows task durations, and
// that a queue running dry resets it.
func TestWindowAdapts(t *testing.T) {
	w := newWindow(Config{Concurrency: 2}, -1) // -1: the consumer sets no ack limit
	if w.max != DefaultMaxPrefetch || w.Limit() != 2 {
		t.Fatalf("new adaptive window: max %d limit %d, want %d and 2", w.max, w.Limit(), DefaultMaxPrefetch)
	}
	w.observe(50 * time.Microsecond)
	if w.Limit() != DefaultMaxPrefetch {
		t.Errorf("after a 50µs task: limit %d, want the cap %d", w.Limit(), DefaultMaxPrefetch)
	}
	for range 60 {
		w.observe(time.Second)
	}
	if w.Limit() != 2 {
		t.Errorf("after 1s tasks: limit %d, want the slots, 2", w.Limit())
	}
	w.observe(50 * time.Microsecond)
	w.idle()
	if w.Limit() != 2 || w.peak.Load() != DefaultMaxPrefetch {
		t.Errorf("after idle: limit %d peak %d, want 2 and %d", w.Limit(), w.peak.Load(), DefaultMaxPrefetch)
	}
	// Holding more than a fallen limit leaves no room, never a negative
	// count (a pull for -9 messages panicked in nats.go).
	w.took(10)
	if r := w.room(); r != 0 {
		t.Errorf("10 held over a limit of 2: room %d, want 0", r)
	}
	if w := newWindow(Config{Concurrency: 1}, 100); w.max != 100 {
		t.Errorf("max ack pending 100: max %d, want 100", w.max)
	}
	if w := newWindow(Config{Concurrency: 4, Prefetch: 2}, 1000); !w.pinned || w.Limit() != 4 {
		t.Errorf("pinned 2 with 4 slots: pinned %v limit %d, want true and 4", w.pinned, w.Limit())
	}
}
