package procq_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// order serves "rec" on the client's queue (one task at a time) once
// started, recording each argument as its task starts.
type order struct {
	mu  sync.Mutex
	ran []string
}

func (o *order) got() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.ran)
}

func (o *order) start(t *testing.T, c *procq.Client) {
	t.Helper()
	reg := task.NewRegistry()
	task.MustRegister(reg, "rec", func(_ context.Context, s string) (string, error) {
		o.mu.Lock()
		o.ran = append(o.ran, s)
		o.mu.Unlock()
		return s, nil
	})
	runWorker(t, c, reg)
}

// Priorities through the front door: tasks submitted, applied and mapped
// at each level while no consumer runs go on their level's subjects, and
// a consumer started then runs every high one first, then the default
// ones, then the low ones, each level in the order it was put. Unknown
// levels are refused, naming the value, and put nothing.
func TestPriorities(t *testing.T) {
	c := connect(t, "prio")
	ctx := ctxT(t)
	p, err := c.Pool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	hp, err := c.Pool(ctx, procq.MapPriority(procq.High), procq.ChunkSize(1))
	if err != nil {
		t.Fatal(err)
	}
	defer hp.Close(ctx)

	// Bad input first: nothing of it may reach the queue.
	if _, err := p.Submit(ctx, "rec", "x", procq.Priority("urgent")); !errors.Is(err, procq.ErrUnknownPriority) ||
		!strings.Contains(err.Error(), `"urgent"`) {
		t.Errorf("Submit at priority urgent: %v, want ErrUnknownPriority naming it", err)
	}
	if _, err := procq.ApplyAsync[string, string](ctx, p, "rec", "x", procq.Priority("2")); !errors.Is(err, procq.ErrUnknownPriority) {
		t.Errorf("ApplyAsync at priority 2: %v, want ErrUnknownPriority", err)
	}
	if _, err := c.Pool(ctx, procq.MapPriority("top")); !errors.Is(err, procq.ErrUnknownPriority) || !strings.Contains(err.Error(), `"top"`) {
		t.Errorf("Pool with MapPriority(top): %v, want ErrUnknownPriority naming it", err)
	}
	if l, err := procq.ParseLevel("HIGH"); err != nil || l != procq.High {
		t.Errorf("ParseLevel(HIGH) = %q, %v", l, err)
	}
	mq, err := c.Queue(ctx, "prioitems", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := procq.Put(ctx, mq, "x", procq.Priority(procq.High)); err == nil || !strings.Contains(err.Error(), "a message queue has no priorities") {
		t.Errorf("Put on a message queue at priority high: %v, want a refusal", err)
	}
	count := func(filter string) uint64 {
		t.Helper()
		n, err := protocol.Count(ctx, mustStream(t, c), filter)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(protocol.QueueFilter("prio")); n != 0 {
		t.Fatalf("%d messages on queue prio after the refused calls, want none", n)
	}

	for i := range 20 {
		if _, err := p.Submit(ctx, "rec", fmt.Sprint("low-", i), procq.Priority(procq.Low)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		if _, err := p.Submit(ctx, "rec", fmt.Sprint("default-", i), procq.Priority(procq.Default)); err != nil {
			t.Fatal(err)
		}
	}
	applied, err := procq.ApplyAsync[string, string](ctx, p, "rec", "high-apply", procq.Priority(procq.High))
	if err != nil {
		t.Fatal(err)
	}
	// A pool mapping at high priority; one of its tasks asks for the
	// default instead.
	mapped := procq.MapAsync[string, string](ctx, hp, "rec", []string{"high-map-0", "high-map-1"}, nil, nil)
	own, err := procq.ApplyAsync[string, string](ctx, hp, "rec", "default-apply", procq.Priority(procq.Default))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the 29 tasks stored", func() bool { return count(protocol.QueueFilter("prio")) == 29 })
	for filter, want := range map[string]uint64{"procq.tasks.prio.high.>": 3, "procq.tasks.prio.work.>": 6, "procq.tasks.prio.low.>": 20} {
		if n := count(filter); n != want {
			t.Errorf("%d tasks on %s, want %d", n, filter, want)
		}
	}

	var o order
	o.start(t, c)
	if got, err := applied.Get(ctx); err != nil || got != "high-apply" {
		t.Errorf("high-priority ApplyAsync: %q, %v", got, err)
	}
	if got, err := own.Get(ctx); err != nil || got != "default-apply" {
		t.Errorf("default-priority ApplyAsync on a high-priority pool: %q, %v", got, err)
	}
	if rs, err := mapped.Get(ctx); err != nil || !slices.Equal(rs, []string{"high-map-0", "high-map-1"}) {
		t.Errorf("high-priority map: %q, %v", rs, err)
	}
	waitFor(t, 20*time.Second, "the 29 tasks run", func() bool { return len(o.got()) >= 29 })
	got := o.got()
	rank := func(s string) int {
		switch {
		case strings.HasPrefix(s, "high"):
			return 0
		case strings.HasPrefix(s, "default"):
			return 1
		}
		return 2
	}
	if !slices.IsSortedFunc(got, func(a, b string) int { return rank(a) - rank(b) }) || len(got) != 29 {
		t.Errorf("ran %d tasks in the order %q, want 29: every high first, then the default ones, then the low ones", len(got), got)
	}
	var lows, defaults []string
	for _, s := range got {
		switch rank(s) {
		case 1:
			defaults = append(defaults, s)
		case 2:
			lows = append(lows, s)
		}
	}
	for i, s := range lows {
		if s != fmt.Sprint("low-", i) {
			t.Errorf("low-priority tasks ran in the order %q, want the order they were put", lows)
			break
		}
	}
	if !slices.Equal(defaults[:5], []string{"default-0", "default-1", "default-2", "default-3", "default-4"}) {
		t.Errorf("default-priority tasks ran in the order %q, want default-0..4 first, as put", defaults)
	}
}

// mustStream is the task stream.
func mustStream(t *testing.T, c *procq.Client) jetstream.Stream {
	t.Helper()
	s, err := c.JetStream().Stream(t.Context(), protocol.TasksStream)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
