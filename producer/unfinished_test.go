package producer_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/procq/procq/producer"
	"github.com/procq/procq/task"
)

// An ordered map that stops names unfinished every input whose result the
// caller did not get: also those answered but held back behind an earlier
// input still running, which were neither yielded nor named before.
func TestOrderedMapNamesHeldBackResultsUnfinished(t *testing.T) {
	e := newEnv(t)
	gate := make(chan struct{})
	defer close(gate) // the worker's handler ends with the test
	reg := task.NewRegistry()
	_ = reg.Register("firstlast", task.HandlerFunc(func(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
		if string(raw) == "0" {
			select {
			case <-gate:
			case <-ctx.Done():
			}
		}
		return raw, nil
	}))
	e.workers(t, 1, 4, reg)
	pool := producer.NewPool(e.q, producer.PoolConfig{ChunkSize: 1})
	// The deadline stops the map while input 0 runs and 1 and 2 are answered.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := pool.Map(ctx, "firstlast", []any{0, 1, 2})
	var ie *producer.IncompleteError
	if !errors.As(err, &ie) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want *IncompleteError wrapping DeadlineExceeded", err)
	}
	if !slices.Equal(ie.Unfinished, []int{0, 1, 2}) {
		t.Errorf("Unfinished %v, want 0-2: results held back for order were never yielded", ie.Unfinished)
	}
}
