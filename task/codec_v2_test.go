//go:build goexperiment.jsonv2

package task

import jsonv2 "encoding/json/v2"

func init() {
	codecs = append(codecs, struct {
		name      string
		marshal   func(any) ([]byte, error)
		unmarshal func([]byte, any) error
	}{"encoding-json-v2",
		func(v any) ([]byte, error) { return jsonv2.Marshal(v) },
		func(b []byte, v any) error { return jsonv2.Unmarshal(b, v) }})
}
