// Package jsonscan finds where JSON values begin and end in bytes that
// are already known to be valid JSON, without decoding or copying.
package jsonscan

import "encoding/json"

// A minimal scanner over JSON that Valid has already accepted. It finds
// where values begin and end, so that a chunk's body splits into its
// elements (SplitArray) and a result body into its answers (scanAnswers)
// without decoding a value or copying a byte. Every function stays within b even on bad input; the
// callers validate first, so the results are only meaningful then.

// SplitArray returns the elements of the JSON array b as sub-slices of b,
// with room for hint elements. ok is false when b is not an array.
func SplitArray(b []byte, hint int) (elems []json.RawMessage, ok bool) {
	elems, _, ok = SplitArrayAt(b, 0, hint)
	return elems, ok
}

// SplitArrayAt is SplitArray of the array that starts at b[i] (after any
// space); end is the index after it.
func SplitArrayAt(b []byte, i, hint int) (elems []json.RawMessage, end int, ok bool) {
	i = SkipSpace(b, i)
	if i >= len(b) || b[i] != '[' {
		return nil, i, false
	}
	elems = make([]json.RawMessage, 0, max(hint, 0))
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return elems, i + 1, true
	}
	for i < len(b) {
		end := SkipValue(b, i)
		elems = append(elems, b[i:end:end])
		i = SkipSpace(b, end)
		if i >= len(b) {
			break
		}
		switch b[i] {
		case ',':
			i = SkipSpace(b, i+1)
		case ']':
			return elems, i + 1, true
		default:
			return nil, i, false
		}
	}
	return nil, i, false
}

func SkipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// SkipString returns the index after the string that opens at b[i].
func SkipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// SkipValue returns the index after the value that starts at b[i].
func SkipValue(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return SkipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = SkipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	default: // a number, true, false or null
		for i < len(b) {
			switch b[i] {
			case ',', ']', '}', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// CountArray counts the elements of the JSON array b in one pass, without
// splitting it; objects reports whether every element is a JSON object.
// ok is false when b is not an array. b must be valid JSON.
func CountArray(b []byte) (n int, objects, ok bool) {
	i := SkipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return 0, false, false
	}
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return 0, true, true
	}
	n, objects = 1, i < len(b) && b[i] == '{'
	depth := 0 // within an element
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			i = SkipString(b, i) - 1
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return n, objects, true // the array's own end
			}
			depth--
		case ',':
			if depth == 0 {
				n++
				if j := SkipSpace(b, i+1); j >= len(b) || b[j] != '{' {
					objects = false
				}
			}
		}
	}
	return 0, false, false
}
