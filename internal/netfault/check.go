package netfault

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Verdict classifies every input of one "producer pool --kind square
// --inputs 1..n" run in Jepsen's terms, from what the producer printed
// and logged: stdout (one "square(x) = x*x" or "square(x) failed: ..."
// line per result), stderr (an incomplete map's "map stopped with N
// inputs unfinished (...)") and its debug log (a "task stored" line per
// chunk the stream acknowledged).
type Verdict struct {
	N         int // inputs of the map
	Submitted int // inputs the producer published: all, or up to the first it names never submitted; those acknowledged, when it failed before its map began
	Acked     int // inputs the stream acknowledged to the producer
	// Every input is exactly one of these.
	OK         int // exactly one result, correct
	Failed     int // one result, an error or a wrong value
	Duplicated int // more than one result
	Lost       int // acknowledged, no result, not reported unfinished
	Unfinished int // acknowledged, no result, reported unfinished by the failed map
	Unknown    int // not acknowledged and no result (indeterminate)

	Exact     bool   // every input's result once, correct, in input order
	MapFailed bool   // the producer exited non-zero
	Reason    string // the producer's error line, when it failed
	Examples  string // a few inputs of each bad class, for a failure message
}

var (
	resultRE     = regexp.MustCompile(`(?m)^square\((\d+)\) (?:= (\d+)|failed: .*)$`)
	storedRE     = regexp.MustCompile(`msg="task stored" .*?index=(\d+) inputs=(\d+)`)
	unfinishedRE = regexp.MustCompile(`map stopped with \d+ inputs unfinished \(([^)]*)\)`)
	notSubRE     = regexp.MustCompile(`inputs from #(\d+) on never submitted`)
	errorLineRE  = regexp.MustCompile(`(?m)^.*(?:map stopped|[Ee]rror|failed).*$`)
)

// Check classifies the inputs 1..n of a square map.
func Check(n int, stdout, stderr, producerLog string, exit int) Verdict {
	v := Verdict{N: n, Submitted: n, MapFailed: exit != 0}
	if v.MapFailed {
		v.Reason = strings.TrimSpace(errorLineRE.FindString(stderr))
		if v.Reason == "" {
			v.Reason = lastLine(stderr)
		}
		if v.Reason == "" {
			v.Reason = fmt.Sprintf("exit %d", exit)
		}
	}
	results := make([]int, n) // per index
	bad := make([]bool, n)
	order := true
	next := 1
	for _, m := range resultRE.FindAllStringSubmatch(stdout, -1) {
		x, _ := strconv.Atoi(m[1])
		if x < 1 || x > n {
			order = false
			continue
		}
		results[x-1]++
		y, err := strconv.Atoi(m[2])
		if m[2] == "" || err != nil || y != x*x {
			bad[x-1] = true
		}
		if x != next {
			order = false
		}
		next = x + 1
	}
	acked := make([]bool, n)
	for _, m := range storedRE.FindAllStringSubmatch(producerLog, -1) {
		i, _ := strconv.Atoi(m[1])
		k, _ := strconv.Atoi(m[2])
		for j := i; j < i+k && j < n; j++ {
			acked[j] = true
		}
	}
	unfinished := make([]bool, n)
	if m := unfinishedRE.FindStringSubmatch(stderr); m != nil {
		for _, r := range ranges(m[1]) {
			for j := r[0]; j <= r[1] && j < n; j++ {
				unfinished[j] = true
			}
		}
	}
	if m := notSubRE.FindStringSubmatch(stderr); m != nil {
		first, _ := strconv.Atoi(m[1])
		v.Submitted = min(first, n)
		for j := first; j < n; j++ {
			unfinished[j] = true
		}
	}
	if v.MapFailed && !unfinishedRE.MatchString(stderr) {
		// It failed before its map began (no inputs named unfinished):
		// what it submitted is what the stream acknowledged.
		v.Submitted = 0
		for _, a := range acked {
			if a {
				v.Submitted++
			}
		}
	}
	var lost, dup, unknown []int
	for i := range n {
		if acked[i] {
			v.Acked++
		}
		switch {
		case results[i] > 1:
			v.Duplicated++
			dup = append(dup, i)
		case results[i] == 1 && bad[i]:
			v.Failed++
		case results[i] == 1:
			v.OK++
		case !acked[i]:
			v.Unknown++
			unknown = append(unknown, i)
		case unfinished[i]:
			v.Unfinished++
		default:
			v.Lost++
			lost = append(lost, i)
		}
	}
	v.Exact = order && v.OK == n
	var ex []string
	for _, c := range []struct {
		name string
		idx  []int
	}{{"lost", lost}, {"duplicated", dup}, {"unknown", unknown}} {
		if len(c.idx) > 0 {
			ex = append(ex, fmt.Sprintf("%s #%v", c.name, c.idx[:min(len(c.idx), 5)]))
		}
	}
	v.Examples = strings.Join(ex, "; ")
	return v
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// ranges parses "0-3, 7, 9-12" (or "none") into inclusive ranges.
func ranges(s string) [][2]int {
	var out [][2]int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		a, b, isRange := strings.Cut(part, "-")
		lo, err := strconv.Atoi(a)
		if err != nil {
			continue
		}
		hi := lo
		if isRange {
			if hi, err = strconv.Atoi(b); err != nil {
				continue
			}
		}
		out = append(out, [2]int{lo, hi})
	}
	return out
}

// Problems lists what makes the verdict a failure: anything lost or
// duplicated, a wrong result, a map that is not exact, and, where
// quorumUp (the fault left a majority of the nodes up and connected), a
// failed map.
func (v Verdict) Problems(quorumUp bool) []string {
	var p []string
	if v.Lost > 0 {
		p = append(p, fmt.Sprintf("%d acknowledged inputs lost", v.Lost))
	}
	if v.Duplicated > 0 {
		p = append(p, fmt.Sprintf("%d inputs with more than one result", v.Duplicated))
	}
	if v.Failed > 0 {
		p = append(p, fmt.Sprintf("%d inputs failed or wrong", v.Failed))
	}
	if v.MapFailed && quorumUp {
		p = append(p, "the map failed while a quorum was up: "+v.Reason)
	}
	if !v.MapFailed && !v.Exact {
		p = append(p, "the map exited 0 without exact results in order")
	}
	if v.Examples != "" && len(p) > 0 {
		p = append(p, v.Examples)
	}
	return p
}
