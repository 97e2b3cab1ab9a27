package task

import (
	gojson "github.com/goccy/go-json"
)

// The JSON codec of the hot paths: task arguments, results and answers.
// It is github.com/goccy/go-json, a drop-in for encoding/json that decodes
// and encodes the same JSON (integers beyond 2^53 included; see the tests)
// at a fraction of the cost, which matters where a chunk carries a
// thousand inputs. The wire format stays plain JSON.
var (
	// Marshal encodes v as JSON.
	Marshal = gojson.Marshal
	// Unmarshal decodes JSON data into v.
	Unmarshal = gojson.Unmarshal
	// Valid reports whether data is valid JSON.
	Valid = gojson.Valid
)
