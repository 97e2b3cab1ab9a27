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
	i := SkipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, false
	}
	elems = make([]json.RawMessage, 0, max(hint, 0))
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return elems, true
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
			return elems, true
		default:
			return nil, false
		}
	}
	return nil, false
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
