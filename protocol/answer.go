package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/procq/procq/task"
	"github.com/procq/procq/task/jsonscan"
)

// Answer is the result of one task message: the task's Procq-Index and one
// outcome per input, in order. A result message's body is a JSON array of
// answers: a consumer that finishes several tasks of the same run at once
// sends them together.
type Answer struct {
	Index    int            `json:"index"`
	Outcomes []task.Outcome `json:"outcomes"`
}

// AppendAnswer appends a's encoding to dst, written directly rather than
// through reflection: a consumer encodes every answer of every task with
// it. The bytes decode as task.Unmarshal decodes a marshalled Answer.
func AppendAnswer(dst []byte, a Answer) []byte {
	dst = append(dst, `{"index":`...)
	dst = strconv.AppendInt(dst, int64(a.Index), 10)
	dst = append(dst, `,"outcomes":[`...)
	for i, o := range a.Outcomes {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = task.AppendOutcome(dst, o)
	}
	return append(dst, "]}"...)
}

// DecodeAnswers decodes a result message's body: a JSON array of answers.
// Bodies in the shape AppendAnswer writes are read by the scanner without
// reflection or copies (each result is a sub-slice of body); anything else
// valid (other key order, unknown keys, escapes in keys: an outside
// consumer's) goes through task.Unmarshal, with the same result. hint is the
// number of outcomes an answer is expected to hold (the chunk size), to
// size them at once.
func DecodeAnswers(body []byte, hint int) ([]Answer, error) {
	if task.Valid(body) {
		if as, ok := scanAnswers(body, hint); ok {
			return as, nil
		}
	}
	var as []Answer
	if err := task.Unmarshal(body, &as); err != nil {
		return nil, err
	}
	return as, nil
}

// scanAnswers reads body in one pass when it is exactly what AppendAnswer
// writes (a array of {"index": n, "outcomes": [...]} in that key order,
// any spacing); ok is false for anything else. body must be valid JSON.
func scanAnswers(body []byte, hint int) (as []Answer, ok bool) {
	s := scanner{b: body}
	if !s.lit('[') {
		return nil, false
	}
	if s.lit(']') {
		return []Answer{}, true
	}
	for {
		var a Answer
		if !s.lit('{') || !s.key(`"index"`) {
			return nil, false
		}
		start := s.i
		s.i = jsonscan.SkipValue(s.b, s.i)
		n, err := strconv.Atoi(string(s.b[start:s.i]))
		if err != nil || !s.lit(',') || !s.key(`"outcomes"`) || !s.lit('[') {
			return nil, false
		}
		a.Index = n
		if !s.lit(']') {
			if a.Outcomes, ok = s.outcomes(hint); !ok {
				return nil, false
			}
		} else {
			a.Outcomes = []task.Outcome{}
		}
		if !s.lit('}') {
			return nil, false
		}
		as = append(as, a)
		if s.lit(']') {
			return as, true
		}
		if !s.lit(',') {
			return nil, false
		}
	}
}

// outcomes reads the outcomes of an answer after its '[', up to and
// including the ']'.
func (s *scanner) outcomes(hint int) ([]task.Outcome, bool) {
	outs := make([]task.Outcome, 0, min(max(hint, 1), 1<<16))
	for {
		var o task.Outcome
		if !s.lit('{') {
			return nil, false
		}
		switch {
		case s.key(`"result"`):
			start := s.i
			s.i = jsonscan.SkipValue(s.b, s.i)
			o.Result = json.RawMessage(s.b[start:s.i:s.i]) // null too, as task.Unmarshal keeps it
		case s.key(`"error"`):
			start := s.i
			s.i = jsonscan.SkipValue(s.b, s.i)
			text, ok := decodeString(s.b[start:s.i])
			if !ok {
				return nil, false
			}
			o.Error = text
		default:
			return nil, false
		}
		if !s.lit('}') {
			return nil, false
		}
		outs = append(outs, o)
		if s.lit(']') {
			return outs, true
		}
		if !s.lit(',') {
			return nil, false
		}
	}
}

// decodeString decodes a JSON string value.
func decodeString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(v, '\\') < 0 && utf8.Valid(v) {
		return string(v[1 : len(v)-1]), true
	}
	// Escapes, or invalid UTF-8 (which the decoder replaces with U+FFFD):
	// as task.Unmarshal reads it.
	var text string
	return text, task.Unmarshal(v, &text) == nil
}

// scanner is a position in valid JSON.
type scanner struct {
	b []byte
	i int
}

// lit consumes c, after any space, when it is next.
func (s *scanner) lit(c byte) bool {
	s.i = jsonscan.SkipSpace(s.b, s.i)
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i = jsonscan.SkipSpace(s.b, s.i+1)
		return true
	}
	return false
}

// key consumes the quoted key k and its colon when they are next.
func (s *scanner) key(k string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(k)) {
		return false
	}
	save := s.i
	s.i += len(k)
	if !s.lit(':') {
		s.i = save
		return false
	}
	return true
}

// SplitArgs returns the argument values of a task message body: the body
// itself, or, where the Procq-Chunk header says n, the n elements of the
// body's JSON array, as sub-slices of body.
func SplitArgs(body []byte, chunkHeader string) ([]json.RawMessage, error) {
	if chunkHeader == "" {
		return []json.RawMessage{body}, nil
	}
	n, err := strconv.Atoi(chunkHeader)
	if err != nil || n < 1 {
		return nil, fmt.Errorf("%w: %s %q is not a positive count", task.ErrBadArgs, HeaderChunk, chunkHeader)
	}
	if !task.Valid(body) {
		var v any
		err := task.Unmarshal(body, &v) // for the decoder's own words on what is wrong
		return nil, fmt.Errorf("%w: chunk body: %v", task.ErrBadArgs, err)
	}
	args, ok := jsonscan.SplitArray(body, min(n, 1<<16))
	if !ok {
		return nil, fmt.Errorf("%w: chunk body is not a JSON array", task.ErrBadArgs)
	}
	if len(args) != n {
		return nil, fmt.Errorf("%w: %s says %d, body has %d", task.ErrBadArgs, HeaderChunk, n, len(args))
	}
	return args, nil
}

// ParseIndex parses a Procq-Index header: decimal digits only, no sign.
func ParseIndex(s string) (int, error) {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%s %q is not an index from 0", HeaderIndex, s)
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s %q is not an index from 0", HeaderIndex, s)
	}
	return n, nil
}
