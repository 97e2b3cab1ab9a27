package protocol

import (
	"errors"
	"slices"
	"testing"
)

func TestPriorityNames(t *testing.T) {
	for in, want := range map[string]Priority{"high": PriorityHigh, "HIGH": PriorityHigh, " low ": PriorityLow,
		"default": PriorityDefault, "": PriorityDefault} {
		if got, err := ParsePriority(in); err != nil || got != want {
			t.Errorf("ParsePriority(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"urgent", "1", "hi"} {
		_, err := ParsePriority(in)
		if !errors.Is(err, ErrUnknownPriority) || err.Error() != `"`+in+`": unknown priority: want high, default or low` {
			t.Errorf("ParsePriority(%q): %v", in, err)
		}
	}
	if err := Priority("urgent").Validate(); err == nil || !errors.Is(err, ErrUnknownPriority) {
		t.Errorf("Validate of urgent: %v", err)
	}
	for _, tt := range []struct{ got, want string }{
		{LevelSubject("q", "R", PriorityHigh), "procq.tasks.q.high.R"},
		{LevelSubject("q", "R.M", PriorityDefault), WorkSubject("q", "R.M")},
		{LevelSubject("q", "R", ""), WorkSubject("q", "R")},
		{LevelSubject("q", "R", PriorityLow), "procq.tasks.q.low.R"},
		{LevelDurable("q", PriorityDefault), DurableName("q")},
		{LevelDurable("q", PriorityHigh), "procq-high_q"},
		{LevelDurable("q", PriorityLow), "procq-low_q"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	if f := LevelFilters("q", PriorityDefault); !slices.Equal(f, []string{"procq.tasks.q.work.>", "procq.tasks.q.sentinel"}) {
		t.Errorf("default filters %q", f)
	}
	if f := RunFilters("q", "R"); !slices.Equal(f, []string{"procq.tasks.q.*.R", "procq.tasks.q.*.R.>"}) {
		t.Errorf("run filters %q", f)
	}
	// Every level's durable is told apart from every queue's default one,
	// whatever the queue is called.
	for _, q := range []string{"q", "high_q", "low_q", "q-high", "procq"} {
		for _, p := range Priorities() {
			gq, gp, ok := ParseDurable(LevelDurable(q, p))
			if !ok || gq != q || gp != p {
				t.Errorf("ParseDurable(%q) = %q, %q, %v; want %q, %q", LevelDurable(q, p), gq, gp, ok, q, p)
			}
		}
	}
	if _, _, ok := ParseDurable("get"); ok {
		t.Error("ParseDurable(get) ok")
	}
	if !IsWorkSubject("q", "procq.tasks.q.low.R.M") || IsWorkSubject("q", SentinelSubject("q")) || IsWorkSubject("q", "procq.tasks.qq.work.R") {
		t.Error("IsWorkSubject")
	}
	if !(TaskOptions{Priority: PriorityDefault}).Plain() || (TaskOptions{Priority: PriorityHigh}).Plain() {
		t.Error("Plain of a default or high priority")
	}
}
