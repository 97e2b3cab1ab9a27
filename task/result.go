package task

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Outcome is the result of one input: Result on success, Error on failure.
// On the wire it is exactly {"result": <JSON>} or {"error": "<text>"}; a
// handler that returns no result gives {"result": null}.
type Outcome struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

var jsonNull = json.RawMessage("null")

// MarshalJSON writes exactly one of the two outcome shapes.
func (o Outcome) MarshalJSON() ([]byte, error) {
	if o.Error != "" {
		return Marshal(struct {
			Error string `json:"error"`
		}{o.Error})
	}
	r := o.Result
	if len(r) == 0 {
		r = jsonNull
	}
	return Marshal(struct {
		Result json.RawMessage `json:"result"`
	}{r})
}

// Answer is the result of one task message: the task's Procq-Index and one
// outcome per input, in order. A result message's body is a JSON array of
// answers: a consumer that finishes several tasks of the same run at once
// sends them together.
type Answer struct {
	Index    int       `json:"index"`
	Outcomes []Outcome `json:"outcomes"`
}

// SplitArgs returns the argument values of a task message body: the body
// itself, or, where the Procq-Chunk header says n, the n elements of the
// body's JSON array.
func SplitArgs(body []byte, chunkHeader string) ([]json.RawMessage, error) {
	if chunkHeader == "" {
		return []json.RawMessage{body}, nil
	}
	n, err := strconv.Atoi(chunkHeader)
	if err != nil || n < 1 {
		return nil, fmt.Errorf("%w: %s %q is not a positive count", ErrBadArgs, HeaderChunk, chunkHeader)
	}
	var args []json.RawMessage
	if err := Unmarshal(body, &args); err != nil {
		return nil, fmt.Errorf("%w: chunk body: %v", ErrBadArgs, err)
	}
	if len(args) != n {
		return nil, fmt.Errorf("%w: %s says %d, body has %d", ErrBadArgs, HeaderChunk, n, len(args))
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
