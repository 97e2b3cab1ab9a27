package procq_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/procq/procq"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/protocol"
)

// A map over consumers started by hand whose broker goes away for longer
// than broker.connect_timeout fails with procq.ErrBrokerLost, naming the
// broker and the setting, within the timeout and a little; the pool then
// terminates at once.
func TestMapFailsWhenBrokerLost(t *testing.T) {
	t.Setenv("PROCQ_BROKER_CONNECT_TIMEOUT", "1s")
	b := natstest.Start(t) // a broker of its own, to take away
	c, err := procq.Connect(t.Context(), procq.WithURL(b.URL), procq.WithToken(b.Token), procq.WithQueue("lost"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t)
	p, err := c.Pool(ctx, procq.Consumers(1), procq.ChunkSize(1))
	if err != nil {
		t.Fatal(err)
	}
	m := procq.MapAsync[int, int](ctx, p, demo.KindSquare, []int{1, 2, 3}, nil, nil)
	// No consumer runs: the map waits for its results (and for
	// pool.idle_timeout, 30s) when the broker goes.
	js := b.JetStream(t)
	t.Log("waiting for the map's 3 tasks to be stored")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		s, err := js.Stream(ctx, protocol.TasksStream)
		if err == nil {
			if info, err := s.Info(ctx); err == nil && info.State.Msgs == 3 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the map's tasks were not stored within 10s")
		}
	}
	b.Server.Shutdown()
	gone := time.Now()
	t.Log("broker shut down; waiting for the map to fail")
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err = m.Get(wctx)
	took := time.Since(gone)
	t.Logf("the map failed %v after the broker went: %v", took.Round(time.Millisecond), err)
	if !errors.Is(err, procq.ErrBrokerLost) {
		t.Fatalf("err %v, want one matching procq.ErrBrokerLost", err)
	}
	for _, want := range []string{"the broker at " + b.URL, "unreachable for longer than broker.connect_timeout (1s)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	_ = p.Terminate(tctx) // the run's end fails on the closed connection: that is its report
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Terminate took %v on a connection closed for good", d)
	}
}
