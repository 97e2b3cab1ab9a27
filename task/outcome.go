package task

import "encoding/json"

// Outcome is the result of one input: Result on success, Error on failure.
// On the wire it is exactly {"result": <JSON>} or {"error": "<text>"}; a
// handler that returns no result gives {"result": null}.
type Outcome struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
	// Retry is set, within the consumer only, when the error asked for
	// another try (Retry); it is not on the wire.
	Retry bool `json:"-"`
	// Cancelled is set, within the consumer only, on the outcome of an
	// input that was cancelled (its Error says so); it is no failure.
	Cancelled bool `json:"-"`
}

var jsonNull = json.RawMessage("null")

// MarshalJSON writes exactly one of the two outcome shapes.
func (o Outcome) MarshalJSON() ([]byte, error) {
	return AppendOutcome(nil, o), nil
}

// AppendOutcome appends o's encoding to dst: {"error": <text>} when it
// failed, else {"result": <JSON>} ({"result": null} for no result). The
// result is copied as it is: it must be valid JSON.
func AppendOutcome(dst []byte, o Outcome) []byte {
	if o.Error != "" {
		dst = append(dst, `{"error":`...)
		q, _ := Marshal(o.Error) // a string always encodes
		dst = append(dst, q...)
		return append(dst, '}')
	}
	r := o.Result
	if len(r) == 0 {
		r = jsonNull
	}
	dst = append(dst, `{"result":`...)
	dst = append(dst, r...)
	return append(dst, '}')
}
