package producer_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/demo"
	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/producer"
	"github.com/procq/procq/protocol"
)

// A map whose connection is closed for good (the broker gone for longer
// than the client's reconnect budget) fails at once with ErrBrokerLost,
// naming the broker and every unfinished input: one waiting for its
// results, and one whose results reader is reopening its consumer (here
// the results stream was deleted under it, so the reader retries), which
// kept retrying on the closed connection for ever.
func TestMapFailsWhenBrokerLostForGood(t *testing.T) {
	for _, reopening := range []bool{false, true} {
		name := "waiting for results"
		if reopening {
			name = "reopening its results reader"
		}
		t.Run(name, func(t *testing.T) { mapLosesBroker(t, reopening) })
	}
}

func mapLosesBroker(t *testing.T, reopening bool) {
	b := natstest.Start(t)
	// The budget of a client with broker.connect_timeout 400ms
	// (link.Connect: attempts ReconnectWait apart).
	nc, err := nats.Connect(b.URL, nats.Token(b.Token), nats.MaxReconnects(4), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	topo, err := protocol.EnsureQueue(context.Background(), js, protocol.QueueConfig{Name: "lost", AckWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	q := producer.NewTaskQueue("lost", js, topo, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx := ctxT(t)
	failed := make(chan error, 1)
	go func() {
		// No consumer: the map waits for its results until the broker goes.
		_, err := producer.NewPool(q, producer.PoolConfig{ChunkSize: 1}).Map(ctx, demo.KindSquare, squares(4))
		failed <- err
	}()
	t.Log("waiting for the map's 4 tasks to be stored")
	waitFor(t, "the map's 4 tasks to be stored", func() bool {
		info, err := topo.Tasks.Info(ctx)
		return err == nil && info.State.Msgs == 4
	})
	if reopening {
		if err := js.DeleteStream(ctx, protocol.ResultsStream); err != nil {
			t.Fatal(err)
		}
		t.Log("results stream deleted; waiting for the results reader to retry")
		waitFor(t, "the results reader to retry", func() bool {
			return strings.Contains(logs.String(), "results consumer not opened; retrying")
		})
	}
	b.Server.Shutdown()
	gone := time.Now()
	t.Log("broker shut down; waiting for the map to fail")
	select {
	case err = <-failed:
	case <-time.After(10 * time.Second):
		t.Fatal("the map did not end within 10s of the broker's loss")
	}
	t.Logf("the map failed %v after the broker went: %v", time.Since(gone).Round(time.Millisecond), err)
	var ie *producer.IncompleteError
	if !errors.As(err, &ie) || !errors.Is(err, producer.ErrBrokerLost) {
		t.Fatalf("err %v, want an *IncompleteError matching ErrBrokerLost", err)
	}
	if !slices.Equal(ie.Unfinished, []int{0, 1, 2, 3}) {
		t.Errorf("Unfinished %v, want 0-3", ie.Unfinished)
	}
	for _, want := range []string{"the broker at " + b.URL, "unreachable for longer than broker.connect_timeout (400ms)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// The consumer watch counts a failed look at the consumers' presence as
// none seen: a broker that cannot answer it (here: its presence bucket
// gone) makes the watch fire after the idle timeout, instead of keeping
// the map waiting for consumers nobody can see.
func TestWatchFiresWhenPresenceChecksFail(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	if err := e.js.DeleteKeyValue(ctx, protocol.ConsumersBucket); err != nil {
		t.Fatal(err)
	}
	const idle = 500 * time.Millisecond
	start := time.Now()
	wctx, stop := e.q.Watch(ctx, nil, idle, idle/10)
	defer stop()
	t.Log("waiting for the consumer watch to fire")
	select {
	case <-wctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("the watch did not fire within 10s with an idle timeout of %v", idle)
	}
	took := time.Since(start)
	err := context.Cause(wctx)
	if !errors.Is(err, producer.ErrNoConsumers) || !strings.Contains(err.Error(), "the last look failed") {
		t.Errorf("cause %v, want ErrNoConsumers saying the look failed", err)
	}
	if took < idle {
		t.Errorf("the watch fired after %v, before the idle timeout %v", took, idle)
	}
}
