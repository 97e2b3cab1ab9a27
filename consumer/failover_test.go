package consumer_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/consumer"
	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// The broker goes away while a finished task's answer is being stored.
// The worker holds the task and stores the answer again as soon as the
// connection is back (its reconnect ends the wait: the publish made
// before may be lost), instead of handing the task back to run again:
// the task runs once, and its answer is stored once (its message id drops
// the second copy).
func TestAnswerStoredAgainOnceTheBrokerIsBack(t *testing.T) {
	const q = "fo"
	srv := natstest.StartRestartable(t)
	js, err := jetstream.New(srv.Conn(t))
	if err != nil {
		t.Fatal(err)
	}
	topo, err := protocol.EnsureQueue(context.Background(), js, protocol.QueueConfig{Name: q, AckWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{js: js, topo: topo, out: &lockedBuf{}}

	var runs atomic.Int32
	running, gate := make(chan struct{}, 1), make(chan struct{})
	reg := task.NewRegistry()
	_ = reg.Register("gated", task.HandlerFunc(func(_ context.Context, raw json.RawMessage) (json.RawMessage, error) {
		runs.Add(1)
		select {
		case running <- struct{}{}:
		default:
		}
		<-gate
		return raw, nil
	}))
	reply := protocol.ResultSubject("m1")
	f.publish(t, protocol.WorkSubject(q, "r1"), map[string]string{protocol.HeaderKind: "gated", protocol.HeaderReply: reply,
		protocol.HeaderRun: "m1", protocol.HeaderIndex: "0", protocol.HeaderMsgID: "m1.0"}, `7`)
	f.startRun(t, q, "r1")
	f.sentinel(t, q, "r1")

	var logs lockedBuf
	w, err := consumer.New(consumer.Config{Name: "C-1", Out: f.out, FetchWait: time.Second}, js, topo, reg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- w.Run(ctx) }()
	select {
	case <-running:
	case <-time.After(30 * time.Second):
		close(gate)
		t.Fatalf("waited 30s for the task to run; log:\n%s", logs.String())
	}

	srv.Stop()
	close(gate)
	// The answer is published while the broker is away (a moment for the
	// worker to get there), and its store fails once the link is back.
	time.Sleep(300 * time.Millisecond)
	srv.Start()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("waited 60s for the worker to take its sentinel; log:\n%s", logs.String())
	}

	log := logs.String()
	if n := runs.Load(); n != 1 {
		t.Errorf("the task ran %d times, want once; log:\n%s", n, log)
	}
	if !strings.Contains(log, `msg="answers not stored; storing them again once the results stream has a leader"`) {
		t.Errorf("the answer's store did not fail while the broker was away (nothing tested); log:\n%s", log)
	}
	if strings.Contains(log, "task handed back") {
		t.Errorf("the task was handed back; log:\n%s", log)
	}
	info, err := topo.Results.Info(context.Background(), jetstream.WithSubjectFilter(reply))
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("%d result messages on %s, want 1", info.State.Msgs, reply)
	}
}
