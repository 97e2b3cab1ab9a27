package config

import (
	"encoding/json"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"
)

// MaxRange bounds a range input such as 1..1000000.
const MaxRange = 10_000_000

// ParseInputs parses a pool's inputs: a range "a..b" (inclusive, integers)
// or a comma list of JSON values; a list item that is not JSON is taken as a
// string. Integers stay int64.
func ParseInputs(s string) ([]any, error) {
	in, err := ParseInputList(s)
	if err != nil {
		return nil, err
	}
	return slices.Collect(in.All()), nil
}

// Inputs are a pool's parsed inputs. A range is kept as its bounds and
// yields its integers one by one, so a map over a million inputs does not
// hold a million of them.
type Inputs struct {
	lo    int64
	n     int   // the range's length; 0 for a list
	list  []any // the list's items
	isRng bool
}

// Len is how many inputs there are.
func (in Inputs) Len() int {
	if in.isRng {
		return in.n
	}
	return len(in.list)
}

// At is the input at index i, 0 <= i < Len().
func (in Inputs) At(i int) any {
	if in.isRng {
		return in.lo + int64(i) // within the range: no overflow
	}
	return in.list[i]
}

// All yields the inputs in order.
func (in Inputs) All() iter.Seq[any] {
	return func(yield func(any) bool) {
		for i := range in.Len() {
			if !yield(in.At(i)) {
				return
			}
		}
	}
}

// ParseInputList is ParseInputs without materialising a range.
func ParseInputList(s string) (Inputs, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Inputs{}, fmt.Errorf("no inputs")
	}
	if lo, hi, ok := strings.Cut(s, ".."); ok {
		a, errA := strconv.ParseInt(strings.TrimSpace(lo), 10, 64)
		b, errB := strconv.ParseInt(strings.TrimSpace(hi), 10, 64)
		if errA != nil || errB != nil || b < a {
			return Inputs{}, fmt.Errorf("range %q: want a..b with integers a <= b", s)
		}
		// The difference in uint64 cannot overflow, whatever the signs.
		if uint64(b)-uint64(a) >= MaxRange {
			return Inputs{}, fmt.Errorf("range %q has more than %d inputs", s, MaxRange)
		}
		return Inputs{lo: a, n: int(uint64(b) - uint64(a) + 1), isRng: true}, nil
	}
	list, err := parseList(s)
	return Inputs{list: list}, err
}

func parseList(s string) ([]any, error) {
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
