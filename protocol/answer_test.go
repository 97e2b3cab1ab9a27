package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/procq/procq/task"
)

// What AppendAnswer writes, DecodeAnswers and task.Unmarshal read alike; the
// scanner takes a plain body without falling back.
func TestAnswersRoundTrip(t *testing.T) {
	as := []Answer{
		{Index: 0, Outcomes: []task.Outcome{{Result: json.RawMessage(`9`)}, {Error: "bad \"x\"\n"}, {}}},
		{Index: 12, Outcomes: []task.Outcome{{Result: json.RawMessage(`{"a":[1,"]"]}`)}, {Result: json.RawMessage(`"s\\\""`)}}},
		{Index: 3, Outcomes: []task.Outcome{}},
		{Index: 5, Results: json.RawMessage(`[1, "]", {"a":[2]}, null]`)},
	}
	// Outcomes that all succeeded go out as results, the compact shape.
	compact := AppendAnswer(nil, Answer{Index: 7, Outcomes: []task.Outcome{{Result: json.RawMessage(`4`)}, {}}})
	if string(compact) != `{"index":7,"results":[4,null]}` {
		t.Errorf("all succeeded: %s, want the results shape", compact)
	}
	body := []byte{'['}
	for i, a := range as {
		if i > 0 {
			body = append(body, ',')
		}
		body = AppendAnswer(body, a)
	}
	body = append(body, ']')
	var std []Answer
	if err := json.Unmarshal(body, &std); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	fast, ok := scanAnswers(body, 2)
	if !ok {
		t.Fatalf("scanAnswers refused %s", body)
	}
	if !reflect.DeepEqual(normal(fast), normal(std)) {
		t.Errorf("scanAnswers %+v, task.Unmarshal %+v", fast, std)
	}
	for i := range fast {
		v1, ok1 := fast[i].Values()
		v2, ok2 := std[i].Values()
		if ok1 != ok2 || !reflect.DeepEqual(v1, v2) {
			t.Errorf("answer %d: values %q (%v) as scanned, %q (%v) as unmarshalled", i, v1, ok1, v2, ok2)
		}
	}
	if vs, ok := fast[3].Values(); !ok || len(vs) != 4 || string(vs[2]) != `{"a":[2]}` {
		t.Errorf("answer 5's values: %q, %v", vs, ok)
	}
	// "results": null beside outcomes (an outside consumer's) is no
	// results: the outcomes count.
	as, err := DecodeAnswers([]byte(`[{"outcomes":[{"result":1}],"index":2,"results":null}]`), 1)
	if err != nil || len(as) != 1 {
		t.Fatalf("%+v, %v", as, err)
	}
	if _, ok := as[0].Values(); ok {
		t.Error("a null results has values")
	}
	if outs, ok := as[0].Each(); !ok || len(outs) != 1 || string(outs[0].Result) != "1" {
		t.Errorf("Each = %+v, %v; want the outcome", outs, ok)
	}
}

// Any body: DecodeAnswers gives what task.Unmarshal gives, error or answers.
func FuzzDecodeAnswers(f *testing.F) {
	f.Add([]byte(`[{"index":0,"outcomes":[{"result":9},{"error":"bad"}]}]`))
	f.Add([]byte(`[{"outcomes":[{"result":9}],"index":4}]`))
	f.Add([]byte(`[{"index":1,"outcomes":[{"result":null},{}]} , {"index":2,"outcomes":null}]`))
	f.Add([]byte(`[{"index":1.5,"outcomes":[]}]`))
	f.Add([]byte(`[{"index":1,"outcomes":[{"error":"\u00e9\"","result":1}]}]`))
	f.Add([]byte(`[{"ind\u0065x":1}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"index":0,"results":[9,16,null]},{"index":3,"outcomes":[{"error":"e"}]}]`))
	f.Add([]byte(`[{"index":0,"results":{"a":1}}]`))
	f.Add([]byte(`[{"index":0, "results" : [ 1 , [2] ] , "outcomes":[]}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var std []Answer
		stdErr := task.Unmarshal(body, &std)
		got, err := DecodeAnswers(body, 4)
		if (err != nil) != (stdErr != nil) {
			t.Fatalf("%q: DecodeAnswers error %v, task.Unmarshal error %v", body, err, stdErr)
		}
		if err == nil && !reflect.DeepEqual(normal(got), normal(std)) {
			t.Fatalf("%q: DecodeAnswers %+v, task.Unmarshal %+v", body, got, std)
		}
	})
}

// normal compares results by their compact form: task.Unmarshal keeps a raw
// result's inner spacing as the scanner does, but not always its outer.
func normal(as []Answer) []Answer {
	out := make([]Answer, len(as))
	for i, a := range as {
		out[i] = Answer{Index: a.Index, Outcomes: make([]task.Outcome, len(a.Outcomes))}
		if a.Results != nil && string(a.Results) != "null" { // null: no results, as DecodeAnswers reads it
			var b bytes.Buffer
			if json.Compact(&b, a.Results) == nil {
				out[i].Results = b.Bytes()
			}
		}
		for j, o := range a.Outcomes {
			var b bytes.Buffer
			if json.Compact(&b, o.Result) == nil {
				o.Result = b.Bytes()
			}
			out[i].Outcomes[j] = o
		}
	}
	return out
}

// An error text with invalid UTF-8 decodes as task.Unmarshal decodes it.
func TestDecodeAnswersInvalidUTF8(t *testing.T) {
	body := []byte("[{\"index\":1,\"outcomes\":[{\"error\":\"a\xffb\"}]}]")
	var std []Answer
	if err := json.Unmarshal(body, &std); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeAnswers(body, 1)
	if err != nil || !reflect.DeepEqual(got, std) {
		t.Errorf("DecodeAnswers = %+v, %v; task.Unmarshal %+v", got, err, std)
	}
}

func TestReadChunk(t *testing.T) {
	c, err := ReadChunk([]byte(`[{"x":1},{"x":2}]`), "2")
	if err != nil || c.N != 2 || !c.Objects || string(c.Elems()[1]) != `{"x":2}` {
		t.Fatalf("ReadChunk: %+v, %v", c, err)
	}
	if c, err := ReadChunk([]byte(` [ {"x":1} , null ] `), "2"); err != nil || c.N != 2 || c.Objects {
		t.Errorf("ReadChunk with a null: %+v, %v; want 2 inputs, not all objects", c, err)
	}
	for _, tc := range []struct{ body, header, want string }{
		{`[1]`, "2", "Procq-Chunk says 2, body has 1"},
		{`[1]`, "zero", `Procq-Chunk "zero" is not a positive count`},
		{`[1]`, "0", `Procq-Chunk "0" is not a positive count`},
		{`{"x":1}`, "1", "chunk body is not a JSON array"},
		{`[1,`, "1", "chunk body: "},
	} {
		_, err := ReadChunk([]byte(tc.body), tc.header)
		if !errors.Is(err, task.ErrBadArgs) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadChunk(%s, %q): %v, want task.ErrBadArgs saying %q", tc.body, tc.header, err, tc.want)
		}
	}
}
