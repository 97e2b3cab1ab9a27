package task

import "encoding/json"

// A minimal scanner over JSON that Valid has already accepted. It finds
// where values begin and end, so that a chunk's body splits into its
// elements (splitArray) and a result body into its answers (scanAnswers)
// without decoding a value or copying a byte. Every function stays within b even on bad input; the
// callers validate first, so the results are only meaningful then.

// splitArray returns the elements of the JSON array b as sub-slices of b,
// with room for hint elements. ok is false when b is not an array.
func splitArray(b []byte, hint int) (elems []json.RawMessage, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, false
	}
	elems = make([]json.RawMessage, 0, max(hint, 0))
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return elems, true
	}
	for i < len(b) {
		end := skipValue(b, i)
		elems = append(elems, b[i:end:end])
		i = skipSpace(b, end)
		if i >= len(b) {
			break
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return elems, true
		default:
			return nil, false
		}
	}
	return nil, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string that opens at b[i].
func skipString(b []byte, i int) int {
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

// skipValue returns the index after the value that starts at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
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
