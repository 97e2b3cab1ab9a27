package task

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

type point struct {
	X int `json:"x"`
	Y int `json:"y"`
}

// A typed handler runs alone and in chunks, with the same outcomes: each
// bad input, failing or panicking call and unencodable result fails alone.
func TestRegisterTyped(t *testing.T) {
	reg := NewRegistry()
	MustRegister(reg, "sum", func(_ context.Context, p point) (int, error) {
		switch p.X {
		case -1:
			return 0, errors.New("minus one")
		case -2:
			panic("boom")
		}
		return p.X + p.Y, nil
	})
	MustRegister(reg, "inv", func(_ context.Context, x float64) (float64, error) { return 1 / x, nil })
	if err := Register(reg, "sum", func(context.Context, point) (int, error) { return 0, nil }); !errors.Is(err, ErrDuplicateKind) {
		t.Errorf("second sum: %v, want ErrDuplicateKind", err)
	}

	body := []byte(`[{"x":1,"y":2}, {"x":-1}, null, {"x":-2}, 7, {"x":"a"}, {"y":5}]`)
	want := []string{
		`{"result":3}`,
		`{"error":"minus one"}`,
		`{"error":"bad task arguments: want a JSON object, got \"null\""}`,
		`{"error":"task sum panicked: boom"}`,
		`{"error":"bad task arguments: want a JSON object, got \"7\""}`,
		`{"error":"bad task arguments:`, // the decoder's words follow
		`{"result":5}`,
	}
	elems, err := SplitArgs(body, "7")
	if err != nil {
		t.Fatal(err)
	}
	chunk, ok := reg.RunChunk(context.Background(), "sum", body, elems)
	if !ok || len(chunk) != len(want) {
		t.Fatalf("RunChunk: ok %v, %d outcomes; want %d", ok, len(chunk), len(want))
	}
	for i, e := range elems {
		res, err := reg.Run(context.Background(), "sum", e)
		alone := Outcome{Result: res}
		if err != nil {
			alone = Outcome{Error: ErrorText(err)}
		}
		a, c := string(AppendOutcome(nil, alone)), string(AppendOutcome(nil, chunk[i]))
		if a != c {
			t.Errorf("input %d: alone %s, in a chunk %s", i, a, c)
		}
		if !strings.HasPrefix(c, strings.TrimSuffix(want[i], "}")) {
			t.Errorf("input %d: %s, want %s", i, c, want[i])
		}
	}

	// A good chunk decodes in one call; one result that cannot be encoded
	// (+Inf) fails alone.
	body = []byte(`[2, 0, 4]`)
	elems, _ = SplitArgs(body, "3")
	outs, _ := reg.RunChunk(context.Background(), "inv", body, elems)
	got := string(AppendAnswer(nil, Answer{Index: 0, Outcomes: outs}))
	if !strings.HasPrefix(got, `{"index":0,"outcomes":[{"result":0.5},{"error":"encode result:`) || !strings.HasSuffix(got, `},{"result":0.25}]}`) {
		t.Errorf("inv chunk: %s", got)
	}

	// A raw Handler is no chunk handler: the caller runs it input by input.
	if err := reg.Register("raw", HandlerFunc(func(_ context.Context, a json.RawMessage) (json.RawMessage, error) { return a, nil })); err != nil {
		t.Fatal(err)
	}
	if _, ok := reg.RunChunk(context.Background(), "raw", body, elems); ok {
		t.Error("RunChunk ran a raw handler")
	}
}

// A chunk stops between inputs once ctx ends.
func TestTypedChunkStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	reg := NewRegistry()
	calls := 0
	MustRegister(reg, "k", func(context.Context, int) (int, error) {
		calls++
		if calls == 2 {
			cancel()
		}
		return calls, nil
	})
	body := []byte(`[1,2,3,4]`)
	elems, _ := SplitArgs(body, "4")
	outs, _ := reg.RunChunk(ctx, "k", body, elems)
	if calls != 2 || string(outs[0].Result) != "1" || string(outs[1].Result) != "2" {
		t.Errorf("%d calls, outcomes %+v; want 2 calls and results 1, 2", calls, outs)
	}
}

// What AppendAnswer writes, DecodeAnswers and Unmarshal read alike; the
// scanner takes a plain body without falling back.
func TestAnswersRoundTrip(t *testing.T) {
	as := []Answer{
		{Index: 0, Outcomes: []Outcome{{Result: json.RawMessage(`9`)}, {Error: "bad \"x\"\n"}, {}}},
		{Index: 12, Outcomes: []Outcome{{Result: json.RawMessage(`{"a":[1,"]"]}`)}, {Result: json.RawMessage(`"s\\\""`)}}},
		{Index: 3, Outcomes: []Outcome{}},
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
		t.Errorf("scanAnswers %+v, Unmarshal %+v", fast, std)
	}
}

// Any body: DecodeAnswers gives what Unmarshal gives, error or answers.
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
		stdErr := Unmarshal(body, &std)
		got, err := DecodeAnswers(body, 4)
		if (err != nil) != (stdErr != nil) {
			t.Fatalf("%q: DecodeAnswers error %v, Unmarshal error %v", body, err, stdErr)
		}
		if err == nil && !reflect.DeepEqual(normal(got), normal(std)) {
			t.Fatalf("%q: DecodeAnswers %+v, Unmarshal %+v", body, got, std)
		}
	})
}

// normal compares results by their compact form: Unmarshal keeps a raw
// result's inner spacing as the scanner does, but not always its outer.
func normal(as []Answer) []Answer {
	out := make([]Answer, len(as))
	for i, a := range as {
		out[i] = Answer{Index: a.Index, Outcomes: make([]Outcome, len(a.Outcomes))}
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

// An error text with invalid UTF-8 decodes as Unmarshal decodes it.
func TestDecodeAnswersInvalidUTF8(t *testing.T) {
	body := []byte("[{\"index\":1,\"outcomes\":[{\"error\":\"a\xffb\"}]}]")
	var std []Answer
	if err := json.Unmarshal(body, &std); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeAnswers(body, 1)
	if err != nil || !reflect.DeepEqual(got, std) {
		t.Errorf("DecodeAnswers = %+v, %v; Unmarshal %+v", got, err, std)
	}
}

type badChunk struct{ HandlerFunc }

func (badChunk) HandleChunk(context.Context, []byte, []json.RawMessage) []Outcome {
	return []Outcome{{Result: json.RawMessage(`{"unclosed":`)}, {Result: json.RawMessage(`7`)}}
}

// A ChunkHandler of one's own that returns a result that is not JSON
// fails that input, as Run's callers do for one result.
func TestRunChunkChecksOtherHandlersResults(t *testing.T) {
	reg := NewRegistry()
	if err := reg.Register("bad", badChunk{}); err != nil {
		t.Fatal(err)
	}
	body := []byte(`[1,2]`)
	elems, _ := SplitArgs(body, "2")
	out, ok := reg.RunChunk(context.Background(), "bad", body, elems)
	if !ok || out[0].Error != "task returned invalid JSON" || string(out[1].Result) != "7" {
		t.Errorf("outcomes %+v, want input 0 failed, input 1's 7", out)
	}
}
