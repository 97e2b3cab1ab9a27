package consumer

import (
	"testing"
	"time"
)

// Stores of answers that keep failing share one bound from the first
// failure; a failure after a quiet spell longer than the bound starts a
// new run, rather than inheriting an old run's spent bound.
func TestStoreStreak(t *testing.T) {
	w := &Worker{cfg: Config{StoreTimeout: time.Second}}
	first := w.storeStreak()
	w.storeLast.Store(time.Now().UnixNano())
	time.Sleep(10 * time.Millisecond)
	if got := w.storeStreak(); !got.Equal(first) {
		t.Errorf("a failure right after another began a new run at %v, want the run of %v", got, first)
	}
	w.storeLast.Store(time.Now().Add(-2 * time.Second).UnixNano())
	if got := w.storeStreak(); !got.After(first) {
		t.Errorf("a failure 2s after the last (bound 1s) kept the run of %v, want a new one", first)
	}
	w.storeFailing.Store(0) // a store succeeded
	w.storeLast.Store(time.Now().UnixNano())
	before := time.Now()
	if got := w.storeStreak(); got.Before(before) {
		t.Errorf("a failure after a stored answer kept an old run (%v)", got)
	}
}
