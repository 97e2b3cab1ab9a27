package protocol

import "testing"

func TestJudgeSentinel(t *testing.T) {
	base := SentinelCase{IsSentinel: true, Run: "R", Current: "R"}
	with := func(f func(*SentinelCase)) SentinelCase { c := base; f(&c); return c }
	tests := []struct {
		name string
		c    SentinelCase
		want SentinelVerdict
	}{
		{"not a sentinel", with(func(c *SentinelCase) { c.IsSentinel = false }), SentinelReject},
		{"no run", with(func(c *SentinelCase) { c.Run = ""; c.Current = "" }), SentinelReject},
		{"already took one", with(func(c *SentinelCase) { c.Took = true }), SentinelPass},
		{"older run", with(func(c *SentinelCase) { c.Current = "S" }), SentinelDrop},
		{"spawned for another run", with(func(c *SentinelCase) { c.Bound = "S" }), SentinelPass},
		{"by hand, run over at start", with(func(c *SentinelCase) { c.Skip = "R" }), SentinelDrop},
		// The hang of a replacement started after the sentinels: bound to
		// its run, it takes the sentinel even though the run was over when
		// it started.
		{"spawned replacement after the run closed", with(func(c *SentinelCase) { c.Bound = "R"; c.Skip = "R" }), SentinelTake},
		{"unfinished work", with(func(c *SentinelCase) { c.Unfinished = 2 }), SentinelWait},
		{"spawned, unfinished work", with(func(c *SentinelCase) { c.Bound = "R"; c.Unfinished = 1 }), SentinelWait},
		{"delayed tasks not fired", with(func(c *SentinelCase) { c.Delayed = 1 }), SentinelWait},
		{"spawned, delayed tasks not fired", with(func(c *SentinelCase) { c.Bound = "R"; c.Delayed = 3 }), SentinelWait},
		{"another run's, delayed tasks", with(func(c *SentinelCase) { c.Current = "other"; c.Delayed = 3 }), SentinelDrop},
		{"take", base, SentinelTake},
		{"spawned, take", with(func(c *SentinelCase) { c.Bound = "R" }), SentinelTake},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := JudgeSentinel(tt.c); got != tt.want {
				t.Errorf("JudgeSentinel(%+v) = %v, want %v", tt.c, got, tt.want)
			}
		})
	}
}
