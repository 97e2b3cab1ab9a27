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

// Answer is the result of one task message: the task's Procq-Index and its
// inputs' results, in order. A result message's body is a JSON array of
// answers: a consumer that finishes several tasks of the same run at once
// sends them together. When every input succeeded, the answer carries
// their results as one JSON array (Results: {"index": 0, "results": [9, 16]});
// else one outcome per input (Outcomes: {"index": 0, "outcomes":
// [{"result": 9}, {"error": "..."}]}). Readers take both shapes.
type Answer struct {
	Index    int               `json:"index"`
	Results  json.RawMessage   `json:"results,omitempty"`
	Outcomes []task.Outcome    `json:"outcomes,omitempty"`
	values   []json.RawMessage // Results split, where the decoder did it
}

// Values is Results split into one result per input (sub-slices of it);
// ok is false when Results is not a JSON array. An answer that carries
// Outcomes has no values.
func (a Answer) Values() (values []json.RawMessage, ok bool) {
	switch {
	case a.values != nil:
		return a.values, true
	case a.Results == nil:
		return nil, false
	}
	return jsonscan.SplitArray(a.Results, 0)
}

// Each is one outcome per input, whichever shape a holds; ok is false when
// its results are not a JSON array.
func (a Answer) Each() (outs []task.Outcome, ok bool) {
	if a.Results == nil {
		return a.Outcomes, true
	}
	values, ok := a.Values()
	if !ok {
		return nil, false
	}
	outs = make([]task.Outcome, len(values))
	for i, v := range values {
		outs[i].Result = v
	}
	return outs, true
}

// AppendAnswer appends a's encoding to dst, written directly rather than
// through reflection: a consumer encodes every answer of every task with
// it. Outcomes that all succeeded are written as results, the compact
// shape. The bytes decode as task.Unmarshal decodes a marshalled Answer.
func AppendAnswer(dst []byte, a Answer) []byte {
	dst = append(dst, `{"index":`...)
	dst = strconv.AppendInt(dst, int64(a.Index), 10)
	switch {
	case a.Results != nil:
		dst = append(dst, `,"results":`...)
		dst = append(dst, a.Results...)
		return append(dst, '}')
	case len(a.Outcomes) > 0 && allSucceeded(a.Outcomes):
		dst = append(dst, `,"results":[`...)
		for i, o := range a.Outcomes {
			if i > 0 {
				dst = append(dst, ',')
			}
			if len(o.Result) == 0 {
				dst = append(dst, "null"...)
			} else {
				dst = append(dst, o.Result...)
			}
		}
		return append(dst, "]}"...)
	}
	dst = append(dst, `,"outcomes":[`...)
	for i, o := range a.Outcomes {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = task.AppendOutcome(dst, o)
	}
	return append(dst, "]}"...)
}

func allSucceeded(outs []task.Outcome) bool {
	for _, o := range outs {
		if o.Error != "" {
			return false
		}
	}
	return true
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
	for i := range as {
		if string(as[i].Results) == "null" {
			as[i].Results = nil // "results": null beside outcomes is no results
		}
	}
	return as, nil
}

// maxHint bounds the room an answer's values are given ahead.
const maxHint = 1024

// scanAnswers reads body in one pass when it is exactly what AppendAnswer
// writes (an array of {"index": n, "results": [...]} or {"index": n,
// "outcomes": [...]} in that key order, any spacing); ok is false for
// anything else. body must be valid JSON. Results are split as they are
// read (Values), sub-slices of body.
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
		if err != nil || !s.lit(',') {
			return nil, false
		}
		a.Index = n
		switch {
		case s.key(`"results"`):
			start := s.i
			// At most maxHint values sized ahead: a message of many small
			// answers must not reserve a whole chunk's room for each.
			if a.values, s.i, ok = jsonscan.SplitArrayAt(s.b, s.i, min(hint, maxHint)); !ok {
				return nil, false
			}
			a.Results = json.RawMessage(s.b[start:s.i:s.i])
		case s.key(`"outcomes"`) && s.lit('['):
			if !s.lit(']') {
				if a.Outcomes, ok = s.outcomes(hint); !ok {
					return nil, false
				}
			} else {
				a.Outcomes = []task.Outcome{}
			}
		default:
			return nil, false
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

// ReadChunk reads the body of a task message whose Procq-Chunk header says
// n: a JSON array of n elements, one per input, checked in two passes
// (valid JSON, then the count) and not split: a typed handler decodes it
// whole.
func ReadChunk(body []byte, chunkHeader string) (task.Chunk, error) {
	n, err := strconv.Atoi(chunkHeader)
	if err != nil || n < 1 {
		return task.Chunk{}, fmt.Errorf("%w: %s %q is not a positive count", task.ErrBadArgs, HeaderChunk, chunkHeader)
	}
	if !task.Valid(body) {
		var v any
		err := task.Unmarshal(body, &v) // for the decoder's own words on what is wrong
		return task.Chunk{}, fmt.Errorf("%w: chunk body: %v", task.ErrBadArgs, err)
	}
	got, objects, ok := jsonscan.CountArray(body)
	if !ok {
		return task.Chunk{}, fmt.Errorf("%w: chunk body is not a JSON array", task.ErrBadArgs)
	}
	if got != n {
		return task.Chunk{}, fmt.Errorf("%w: %s says %d, body has %d", task.ErrBadArgs, HeaderChunk, n, got)
	}
	return task.Chunk{Body: body, N: n, Objects: objects}, nil
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
