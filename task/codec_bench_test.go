package task

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"

	gojson "github.com/goccy/go-json"
)

// squareArgs is the shape in which the square kind (package demo) decodes
// its arguments.
type squareArgs struct {
	X     *int64 `json:"x"`
	Sleep string `json:"sleep"`
}

// codecs are the JSON implementations weighed for the hot paths; the
// build with GOEXPERIMENT=jsonv2 adds encoding/json/v2 (codec_v2_test.go).
var codecs = []struct {
	name      string
	marshal   func(any) ([]byte, error)
	unmarshal func([]byte, any) error
}{
	{"encoding-json", json.Marshal, json.Unmarshal},
	{"goccy-go-json", gojson.Marshal, gojson.Unmarshal},
}

// BenchmarkCodec is what one chunk of 10,000 square inputs costs the
// codec: decoding its body into the typed arguments, and encoding the
// typed results.
//
//	go test -run '^$' -bench Codec ./task
//	GOEXPERIMENT=jsonv2 go test -run '^$' -bench Codec ./task
func BenchmarkCodec(b *testing.B) {
	const n = 10_000
	body := []byte{'['}
	results := make([]int64, n)
	for i := range n {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, `{"x":`+strconv.Itoa(i*7919)+`}`...)
		results[i] = int64(i*7919) * int64(i*7919)
	}
	body = append(body, ']')
	for _, c := range codecs {
		b.Run(fmt.Sprintf("decode-args/%s", c.name), func(b *testing.B) {
			for b.Loop() {
				var args []squareArgs
				if err := c.unmarshal(body, &args); err != nil || len(args) != n {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*b.N), "ns/input")
		})
		b.Run(fmt.Sprintf("encode-results/%s", c.name), func(b *testing.B) {
			for b.Loop() {
				if _, err := c.marshal(results); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*b.N), "ns/input")
		})
	}
}
