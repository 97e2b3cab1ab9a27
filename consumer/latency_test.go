package consumer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/consumer"
	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/internal/netfault"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// An idle worker 20 ms (a round trip) from its broker waits for work with
// a waiting pull open, as one beside it does: a producer waiting for idle
// consumers sees it. A round of no-wait looks at the three priorities took
// longer than PriorityCheck, so the worker looked again and again, never
// waiting: the producer saw no consumer ready.
func TestIdleWorkerFarFromItsBrokerWaits(t *testing.T) {
	const q = "far"
	b := natstest.Start(t)
	topo, err := protocol.EnsureQueue(t.Context(), b.JetStream(t), protocol.QueueConfig{Name: q, AckWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	px := netfault.NewProxies(t).Add("worker", "127.0.0.1:0", strings.TrimPrefix(b.URL, "nats://"))
	px.Latency(10, 0) // each way
	nc, err := nats.Connect("nats://"+px.Addr(), nats.Token(b.Token))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	far, err := protocol.EnsureQueue(t.Context(), js, protocol.QueueConfig{Name: q, AckWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	w, err := consumer.New(consumer.Config{Name: "C-far", Out: &lockedBuf{}}, js, far, task.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("the worker did not stop within 20s")
		}
	}()
	t.Log("waiting for the idle worker's waiting pull on the queue's durable")
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := topo.Consumer.Info(t.Context())
		if err == nil && info.NumWaiting >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no waiting pull on the queue's durable within 10s (%v): the idle worker never waits", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
