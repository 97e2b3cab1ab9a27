package protocol_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/protocol"
)

// KeyToken keeps an id that is a key's tokens as it is, exactly where the
// key-value store's own rule does, and digests any other.
func TestKeyToken(t *testing.T) {
	rule := regexp.MustCompile(`^[-_A-Za-z0-9]+(\.[-_A-Za-z0-9]+)*$`)
	for _, id := range []string{"a", "abc.12", "run-1_x.0", "", ".", "a.", ".a", "a..b", "a b", "a*", "a>", "é", "a.b.c",
		strings.Repeat("x", 200), strings.Repeat("x", 201)} {
		kept := protocol.KeyToken(id) == id
		if want := rule.MatchString(id) && len(id) <= 200; kept != want {
			t.Errorf("KeyToken(%q) kept %v, want %v", id, kept, want)
		}
		if !kept && !strings.HasPrefix(protocol.KeyToken(id), "h-") {
			t.Errorf("KeyToken(%q) = %q, want a digest", id, protocol.KeyToken(id))
		}
	}
}

func TestSplitTaskID(t *testing.T) {
	run, i, ok := protocol.SplitTaskID(protocol.TaskID("r.x", 42))
	if !ok || run != "r.x" || i != 42 {
		t.Errorf("SplitTaskID(TaskID(r.x, 42)) = %q, %d, %v", run, i, ok)
	}
	for _, bad := range []string{"", "x", ".3", "x.-1", "x.y"} {
		if _, _, ok := protocol.SplitTaskID(bad); ok {
			t.Errorf("SplitTaskID(%q) ok, want not", bad)
		}
	}
}

// Counters add up per counter and queue, and the stream keeps one
// message per counter.
func TestCounters(t *testing.T) {
	b := natstest.Start(t)
	js := b.JetStream(t)
	ctx := t.Context()
	if c, err := protocol.Counters(ctx, js); err != nil || len(c) != 0 {
		t.Fatalf("Counters before the stream exists = %v, %v; want empty", c, err)
	}
	s, err := js.CreateStream(ctx, protocol.CountsStreamConfig(1))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := protocol.Increment(ctx, js, protocol.CountTimedOut, "q1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := protocol.Increment(ctx, js, protocol.CountCancelled, "q2"); err != nil {
		t.Fatal(err)
	}
	c, err := protocol.Counters(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if c[protocol.CountTimedOut]["q1"] != 3 || c[protocol.CountCancelled]["q2"] != 1 || len(c) != 2 {
		t.Errorf("Counters = %v, want timed_out q1 3, cancelled q2 1", c)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("the counters stream holds %d messages, want 2 (one per counter)", info.State.Msgs)
	}
}
