package protocol

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// Outside input reaches ReadChunk through a task's body and its
// Procq-Chunk header: it never panics, and what it accepts is exactly the
// header's count of valid JSON values.
func FuzzReadChunk(f *testing.F) {
	f.Add([]byte(`[{"x":1},{"x":2}]`), "2")
	f.Add([]byte(`[1,2,3]`), "2")
	f.Add([]byte(`[]`), "0")
	f.Add([]byte(`not json`), "1")
	f.Add([]byte(`[9007199254740993]`), "1")
	f.Add([]byte(`[1]`), "1e17")
	f.Add([]byte(`[1]`), "-1")
	f.Fuzz(func(t *testing.T, body []byte, chunk string) {
		c, err := ReadChunk(body, chunk)
		if err != nil {
			return
		}
		n, _ := strconv.Atoi(chunk)
		args := c.Elems()
		if c.N != n || len(args) != n {
			t.Fatalf("chunk %q: N %d, %d args", chunk, c.N, len(args))
		}
		objects := true
		for _, a := range args {
			if !json.Valid(a) {
				t.Fatalf("invalid JSON arg %q", a)
			}
			objects = objects && a[0] == '{'
		}
		if c.Objects != objects {
			t.Fatalf("chunk %q: Objects %v, want %v", body, c.Objects, objects)
		}
	})
}

// ParseIndex takes a decimal index from 0 and nothing else.
func FuzzParseIndex(f *testing.F) {
	for _, s := range []string{"0", "7", "-1", "x", "", "1e3", "99999999999999999999", " 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseIndex(s)
		if err != nil {
			return
		}
		digits := strings.TrimLeft(s, "0")
		if digits == "" {
			digits = "0"
		}
		if n < 0 || strconv.Itoa(n) != digits {
			t.Fatalf("ParseIndex(%q) = %d, want only plain decimal digits accepted", s, n)
		}
	})
}

// A result body from any consumer decodes into answers whose outcomes
// encode back to exactly one of the two shapes, and integers beyond 2^53
// pass through unchanged.
func FuzzAnswers(f *testing.F) {
	f.Add([]byte(`[{"index":0,"outcomes":[{"result":9},{"error":"bad"}]}]`))
	f.Add([]byte(`[{"index":3,"outcomes":[{"result":9007199254740993}]}]`))
	f.Add([]byte(`[{"index":-1,"outcomes":[{}]}]`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[{"index":1e3}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var as []Answer
		if json.Unmarshal(body, &as) != nil {
			return
		}
		for _, a := range as {
			for _, o := range a.Outcomes {
				b, err := json.Marshal(o)
				if err != nil {
					continue // a result that is not valid JSON cannot be re-encoded
				}
				var m map[string]json.RawMessage
				if err := json.Unmarshal(b, &m); err != nil || len(m) != 1 {
					t.Fatalf("outcome %+v encodes as %s, want one key", o, b)
				}
				if _, ok := m["result"]; !ok && o.Error == "" {
					t.Fatalf("outcome %+v encodes as %s", o, b)
				}
				if r, ok := m["result"]; ok && len(o.Result) > 0 && !bytes.Equal(r, o.Result) {
					t.Fatalf("result %s re-encoded as %s", o.Result, r)
				}
			}
		}
	})
}
