package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"strconv"
	"strings"
)

// MaxRange bounds a range input such as 1..1000000.
const MaxRange = 10_000_000

// ParseInputs parses a pool's inputs, in one of these forms:
//
//   - a range a..b of integers, a <= b, as the whole value: 1..10;
//   - a JSON array: its elements are the inputs, so [1,2] is the inputs 1
//     and 2 and [[1,2],[3,4]] is two array inputs;
//   - JSON lines: one JSON value per line;
//   - a comma list of JSON values: "a,b",[1,2],{"x":1,"y":2} is three
//     inputs, as commas inside strings, arrays and objects do not split.
//
// Commas and newlines both separate inputs, so a list may also span lines.
// A list item that is not JSON and does not start like JSON ('"', '[' or
// '{') is taken as a string (x, a b); one that contains ".." is an error,
// as a range must be the whole value (quote it to pass the string).
// Integers stay int64, at any depth; an integer beyond int64 stays exact as
// a json.Number; other numbers are float64.
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

// IntAt is the input at index i when it is an integer, without boxing it
// (At's any costs an allocation per input).
func (in Inputs) IntAt(i int) (int64, bool) {
	if in.isRng {
		return in.lo + int64(i), true
	}
	n, ok := in.list[i].(int64)
	return n, ok
}

// Ints yields the inputs as integers, when every one is: a range, or a
// list of integers. ok is false otherwise.
func (in Inputs) Ints() (ints iter.Seq[int64], ok bool) {
	for _, v := range in.list {
		if _, isInt := v.(int64); !isInt {
			return nil, false
		}
	}
	return func(yield func(int64) bool) {
		for i := range in.Len() {
			n, _ := in.IntAt(i)
			if !yield(n) {
				return
			}
		}
	}, true
}

// ParseInputList is ParseInputs without materialising a range.
func ParseInputList(s string) (Inputs, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Inputs{}, errors.New("no inputs")
	}
	if lo, hi, ok := strings.Cut(s, ".."); ok && isInteger(strings.TrimSpace(lo)) && isInteger(strings.TrimSpace(hi)) {
		return parseRange(s, strings.TrimSpace(lo), strings.TrimSpace(hi))
	}
	list, err := parseList(s)
	if err != nil {
		return Inputs{}, err
	}
	if len(list) == 1 && list[0].array {
		// The whole value is one JSON array: its elements are the inputs.
		elems := list[0].v.([]any)
		if len(elems) == 0 {
			return Inputs{}, errors.New("no inputs: the array [] is empty")
		}
		return Inputs{list: elems}, nil
	}
	out := make([]any, len(list))
	for i, it := range list {
		out[i] = it.v
	}
	return Inputs{list: out}, nil
}

// isInteger reports whether s is a decimal integer with an optional sign,
// whatever its size.
func isInteger(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "+"), "-")
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func parseRange(s, lo, hi string) (Inputs, error) {
	a, errA := strconv.ParseInt(lo, 10, 64)
	b, errB := strconv.ParseInt(hi, 10, 64)
	switch {
	case errA != nil || errB != nil:
		return Inputs{}, fmt.Errorf("range %q: a bound is beyond int64 (want a..b with integers from %d to %d)", s, int64(-1<<63), int64(1<<63-1))
	case b < a:
		return Inputs{}, fmt.Errorf("range %q is reversed: want a..b with integers a <= b", s)
	}
	// The difference in uint64 cannot overflow, whatever the signs.
	if uint64(b)-uint64(a) >= MaxRange {
		return Inputs{}, fmt.Errorf("range %q has more than %d inputs", s, MaxRange)
	}
	return Inputs{lo: a, n: int(uint64(b) - uint64(a) + 1), isRng: true}, nil
}

// item is one parsed list item; array tells a JSON array written as such.
type item struct {
	v     any
	array bool
}

// parseList splits s into items separated by a comma or a newline (or a
// comma and newlines), reading an item that starts like JSON ('"', '[',
// '{') as one JSON value, so that its commas and newlines do not split.
func parseList(s string) ([]item, error) {
	var out []item
	multiline := strings.Contains(s, "\n")
	pos := 0
	for {
		pos = skipSpace(s, pos, false)
		start := pos
		where := fmt.Sprintf("item %d", len(out)+1)
		if multiline {
			where += fmt.Sprintf(" (line %d)", 1+strings.Count(s[:start], "\n"))
		}
		var it item
		if pos < len(s) && strings.IndexByte(`"[{`, s[pos]) >= 0 {
			v, n, err := decodeOne(s[pos:])
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", where, quoteItem(s[pos:], n), err)
			}
			pos += n
			it = item{v: v, array: s[start] == '['}
		} else {
			end := pos
			for end < len(s) && s[end] != ',' && s[end] != '\n' {
				end++
			}
			text := strings.TrimSpace(s[pos:end])
			if text == "" {
				return nil, fmt.Errorf("%s is empty in %q: want a value between the commas", where, s)
			}
			v, err := parseBare(text)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			pos = end
			it = item{v: v}
		}
		out = append(out, it)
		valueEnd := pos
		// A separator: a comma or a newline, and the space around it.
		pos = skipSpace(s, pos, false)
		if pos == len(s) {
			return out, nil
		}
		switch s[pos] {
		case ',':
			pos++
			pos = skipSpace(s, pos, true)
			if pos == len(s) {
				return nil, fmt.Errorf("empty item after the last comma in %q", s)
			}
		case '\n':
			pos = skipSpace(s, pos, true)
		default:
			return nil, fmt.Errorf("%s: unexpected %s after the JSON value %s: want a comma or a newline between inputs",
				where, quoteItem(s[pos:], 0), quoteItem(s[start:valueEnd], 0))
		}
	}
}

// skipSpace skips spaces, tabs and carriage returns from s[pos], and
// newlines too if newlines is set.
func skipSpace(s string, pos int, newlines bool) int {
	for pos < len(s) {
		switch s[pos] {
		case ' ', '\t', '\r':
		case '\n':
			if !newlines {
				return pos
			}
		default:
			return pos
		}
		pos++
	}
	return pos
}

// decodeOne decodes the JSON value at the start of s and returns it and
// the bytes it took; on a syntax error, the bytes up to it.
func decodeOne(s string) (any, int, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		var syn *json.SyntaxError
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, 0, errors.New("invalid JSON: unexpected end of input")
		case errors.As(err, &syn):
			return nil, int(syn.Offset), fmt.Errorf("invalid JSON: %w", err)
		}
		return nil, 0, fmt.Errorf("invalid JSON: %w", err)
	}
	v, err := exact(v)
	return v, int(dec.InputOffset()), err
}

// parseBare reads a list item that does not start like JSON: an integer,
// a JSON number or literal, or else a string.
func parseBare(text string) (any, error) {
	if n, err := strconv.ParseInt(text, 10, 64); err == nil {
		return n, nil
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) == nil && dec.InputOffset() == int64(len(text)) {
		return exact(v)
	}
	if strings.Contains(text, "..") {
		return nil, fmt.Errorf("%q is not a range: a range is the whole value, a..b with integers a <= b; quote it (\"...\") to pass a string", text)
	}
	return text, nil
}

// exact turns the numbers of a decoded JSON value into int64 where they
// are integers that fit, json.Number (exact) where they are integers that
// do not, and float64 otherwise.
func exact(v any) (any, error) {
	switch v := v.(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n, nil
		}
		if isInteger(v.String()) {
			return v, nil
		}
		f, err := v.Float64()
		if err != nil {
			return nil, fmt.Errorf("number %s is out of range", v)
		}
		return f, nil
	case []any:
		for i, e := range v {
			var err error
			if v[i], err = exact(e); err != nil {
				return nil, err
			}
		}
	case map[string]any:
		for k, e := range v {
			var err error
			if v[k], err = exact(e); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}

// quoteItem quotes the start of s for an error message: its first n bytes,
// or up to the end of its line when n is 0, shortened when long.
func quoteItem(s string, n int) string {
	const max = 40
	if n <= 0 || n > len(s) {
		n = len(s)
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			n = i
		}
	}
	s = strings.TrimSpace(s[:n])
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
