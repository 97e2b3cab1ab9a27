package producer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/producer"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// logBuffer is a log destination tests read while it is written.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The reader replaces its results consumer whenever it may have lost it,
// reading on after the last result delivered, and every result arrives
// once, in order: here the consumer is deleted under it (the pull ends
// with an error: at once), then the next one is paused (it delivers
// nothing, yet sends its heartbeats: the fallback, the stall check,
// replaces it once results are stored that it does not deliver).
func TestResultsReaderReplacesItsConsumer(t *testing.T) {
	b := natstest.Start(t)
	js := b.JetStream(t)
	topo, err := protocol.EnsureQueue(context.Background(), js, protocol.QueueConfig{Name: "pool", AckWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	q := producer.NewTaskQueue("pool", js, topo, slog.New(slog.NewTextHandler(&logs, nil)))
	e := &env{js: js, topo: topo, q: q}
	// Input 0 runs at once, 1 to 3 once gates[0] opens, 4 to 7 once gates[1] does.
	gates := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
	var once [2]sync.Once
	open := func(i int) { once[i].Do(func() { close(gates[i]) }) }
	defer func() { open(0); open(1) }() // a failed test lets the workers stop
	reg := task.NewRegistry()
	_ = reg.Register("gated", task.HandlerFunc(func(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
		switch i, _ := strconv.Atoi(string(raw)); {
		case i >= 4:
			<-gates[1]
		case i >= 1:
			<-gates[0]
		}
		return raw, nil
	}))
	e.workers(t, 1, 8, reg)
	const n = 8
	args := make([]any, n)
	for i := range args {
		args[i] = i
	}
	ctx := ctxT(t)
	got := make(chan producer.Result, n)
	failed := make(chan error, 1)
	go func() {
		defer close(got)
		for r, err := range producer.NewPool(e.q, producer.PoolConfig{}).Imap(ctx, "gated", slices.Values(args)) {
			if err != nil {
				failed <- err
				return
			}
			got <- r
		}
	}()
	var rs []producer.Result
	// receive waits for the next k results, in order.
	receive := func(k int) {
		t.Helper()
		for range k {
			select {
			case r, ok := <-got:
				if !ok {
					t.Fatalf("the map ended after %d results: %v; log:\n%s", len(rs), <-failed, logs.String())
				}
				rs = append(rs, r)
			case <-time.After(60 * time.Second):
				t.Fatalf("waited 60s for result %d; log:\n%s", len(rs), logs.String())
			}
		}
	}
	// current is the map's results consumer (the one map running).
	current := func() string {
		t.Helper()
		for c := range topo.Results.ListConsumers(ctx).Info() {
			return c.Name
		}
		t.Fatal("no results consumer")
		return ""
	}

	receive(1)
	first := current()
	if err := js.DeleteConsumer(ctx, protocol.ResultsStream, first); err != nil {
		t.Fatal(err)
	}
	open(0)
	receive(3)
	second := current()
	if _, err := js.PauseConsumer(ctx, protocol.ResultsStream, second, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	open(1)
	receive(n - 4)
	if _, more := <-got; more {
		t.Errorf("more than %d results", n)
	}
	want := make([]string, n)
	for i := range want {
		want[i] = strconv.Itoa(i)
	}
	if got := values(t, rs); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	log := logs.String()
	for _, line := range []string{
		`msg="results consumer failed; reading on with a new consumer"`,
		`consumer=` + first + ` error="nats: consumer deleted"`,
		`msg="results reader stalled with results stored; reading on with a new consumer"`,
	} {
		if !strings.Contains(log, line) {
			t.Errorf("the log lacks %q:\n%s", line, log)
		}
	}
}
