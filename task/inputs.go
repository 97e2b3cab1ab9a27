package task

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// MaxRange bounds a range input such as 1..1000000.
const MaxRange = 10_000_000

// ParseInputs parses a pool's inputs: a range "a..b" (inclusive, integers)
// or a comma list of JSON values; a list item that is not JSON is taken as a
// string. Integers stay int64.
func ParseInputs(s string) ([]any, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("no inputs")
	}
	if lo, hi, ok := strings.Cut(s, ".."); ok {
		a, errA := strconv.ParseInt(strings.TrimSpace(lo), 10, 64)
		b, errB := strconv.ParseInt(strings.TrimSpace(hi), 10, 64)
		if errA != nil || errB != nil || b < a {
			return nil, fmt.Errorf("range %q: want a..b with integers a <= b", s)
		}
		// The difference in uint64 cannot overflow, whatever the signs.
		if uint64(b)-uint64(a) >= MaxRange {
			return nil, fmt.Errorf("range %q has more than %d inputs", s, MaxRange)
		}
		n := uint64(b) - uint64(a) + 1
		out := make([]any, 0, n)
		for i := range n {
			out = append(out, a+int64(i)) // a loop "i <= b; i++" never ends at b = MaxInt64
		}
		return out, nil
	}
	var out []any
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("empty item in %q", s)
		}
		if n, err := strconv.ParseInt(item, 10, 64); err == nil {
			out = append(out, n)
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(item), &v); err != nil {
			v = item
		}
		out = append(out, v)
	}
	return out, nil
}
