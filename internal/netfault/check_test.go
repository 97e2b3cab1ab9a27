package netfault

import (
	"fmt"
	"strings"
	"testing"
)

func squares(xs ...int) string {
	var b strings.Builder
	for _, x := range xs {
		fmt.Fprintf(&b, "square(%d) = %d\n", x, x*x)
	}
	return b.String()
}

func stored(ranges ...[2]int) string {
	var b strings.Builder
	for _, r := range ranges {
		fmt.Fprintf(&b, "time=2026-01-01T00:00:00Z level=DEBUG msg=\"task stored\" map=m1 index=%d inputs=%d\n", r[0], r[1])
	}
	return b.String()
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name                      string
		stdout, stderr, log       string
		exit                      int
		want                      Verdict
		problemsQuorum, problemsN int // problems with quorumUp true, false
	}{
		{name: "exact", stdout: squares(1, 2, 3, 4), log: stored([2]int{0, 2}, [2]int{2, 2}),
			want: Verdict{N: 4, Submitted: 4, Acked: 4, OK: 4, Exact: true}},
		{name: "out of order", stdout: squares(1, 3, 2, 4), log: stored([2]int{0, 4}),
			want: Verdict{N: 4, Submitted: 4, Acked: 4, OK: 4}, problemsQuorum: 1, problemsN: 1},
		{name: "duplicate and lost", stdout: squares(1, 2, 2), log: stored([2]int{0, 4}),
			want:           Verdict{N: 4, Submitted: 4, Acked: 4, OK: 1, Duplicated: 1, Lost: 2, Examples: "lost #[2 3]; duplicated #[1]"},
			problemsQuorum: 4, problemsN: 4},
		{name: "wrong and failed", stdout: "square(1) = 2\nsquare(2) failed: answer not stored\n", log: stored([2]int{0, 2}),
			want: Verdict{N: 2, Submitted: 2, Acked: 2, Failed: 2}, problemsQuorum: 2, problemsN: 2},
		{name: "failed map: unfinished, never submitted, unknown", stdout: squares(1, 2), exit: 1,
			stderr: "Error: map stopped with 3 inputs unfinished (2, 4-5), inputs from #4 on never submitted: submit #4: not stored within queue.put_timeout (30s)\n",
			log:    stored([2]int{0, 3}),
			want: Verdict{N: 6, Submitted: 4, Acked: 3, OK: 2, Unfinished: 1, Unknown: 3, MapFailed: true,
				Reason:   "Error: map stopped with 3 inputs unfinished (2, 4-5), inputs from #4 on never submitted: submit #4: not stored within queue.put_timeout (30s)",
				Examples: "unknown #[3 4 5]"},
			problemsQuorum: 2, problemsN: 0},
		{name: "acknowledged, not answered, not named", stdout: squares(1), exit: 1,
			stderr: "Error: map stopped with 1 inputs unfinished (2): broker gone\n", log: stored([2]int{0, 3}),
			want: Verdict{N: 3, Submitted: 3, Acked: 3, OK: 1, Lost: 1, Unfinished: 1, MapFailed: true,
				Reason: "Error: map stopped with 1 inputs unfinished (2): broker gone", Examples: "lost #[1]"},
			problemsQuorum: 3, problemsN: 2},
		{name: "failed before the map began", exit: 1,
			stderr: "time=... level=INFO msg=x\nproducer: wait for 2 idle consumers (0 ready): context deadline exceeded\n",
			want: Verdict{N: 2, Unknown: 2, MapFailed: true,
				Reason:   "producer: wait for 2 idle consumers (0 ready): context deadline exceeded",
				Examples: "unknown #[0 1]"},
			problemsQuorum: 2, problemsN: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Check(tt.want.N, tt.stdout, tt.stderr, tt.log, tt.exit)
			if got != tt.want {
				t.Errorf("Check:\n got %+v\nwant %+v", got, tt.want)
			}
			if p := got.Problems(true); len(p) != tt.problemsQuorum {
				t.Errorf("Problems(quorum up) = %q, want %d", p, tt.problemsQuorum)
			}
			if p := got.Problems(false); len(p) != tt.problemsN {
				t.Errorf("Problems(no quorum) = %q, want %d", p, tt.problemsN)
			}
		})
	}
}

func TestRanges(t *testing.T) {
	got := fmt.Sprint(ranges("0-3, 7, 9-12"), ranges("none"))
	if want := "[[0 3] [7 7] [9 12]] []"; got != want {
		t.Errorf("ranges = %s, want %s", got, want)
	}
}
