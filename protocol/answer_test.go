package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
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
	if !reflect.DeepEqual(fast, std) {
		t.Errorf("scanAnswers %+v, task.Unmarshal %+v", fast, std)
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

func TestSplitArgs(t *testing.T) {
	args, err := SplitArgs([]byte(`[{"x":1},{"x":2}]`), "2")
	if err != nil || len(args) != 2 || string(args[1]) != `{"x":2}` {
		t.Fatalf("SplitArgs chunk: %q, %v", args, err)
	}
	if _, err := SplitArgs([]byte(`[1]`), "2"); !errors.Is(err, task.ErrBadArgs) {
		t.Errorf("count mismatch: err %v, want task.ErrBadArgs", err)
	}
	if _, err := SplitArgs([]byte(`[1]`), "zero"); !errors.Is(err, task.ErrBadArgs) {
		t.Errorf("bad header: err %v, want task.ErrBadArgs", err)
	}
	args, err = SplitArgs([]byte(`{"n":1}`), "")
	if err != nil || len(args) != 1 || string(args[0]) != `{"n":1}` {
		t.Errorf("single: %q, %v", args, err)
	}
}
