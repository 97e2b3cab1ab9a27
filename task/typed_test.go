package task_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

type point struct {
	X int `json:"x"`
	Y int `json:"y"`
}

// A typed handler runs alone and in chunks, with the same outcomes: each
// bad input, failing or panicking call and unencodable result fails alone.
func TestRegisterTyped(t *testing.T) {
	reg := task.NewRegistry()
	task.MustRegister(reg, "sum", func(_ context.Context, p point) (int, error) {
		switch p.X {
		case -1:
			return 0, errors.New("minus one")
		case -2:
			panic("boom")
		}
		return p.X + p.Y, nil
	})
	task.MustRegister(reg, "inv", func(_ context.Context, x float64) (float64, error) { return 1 / x, nil })
	if err := task.Register(reg, "sum", func(context.Context, point) (int, error) { return 0, nil }); !errors.Is(err, task.ErrDuplicateKind) {
		t.Errorf("second sum: %v, want task.ErrDuplicateKind", err)
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
	c, err := protocol.ReadChunk(body, "7")
	if err != nil {
		t.Fatal(err)
	}
	res, ok := reg.CallChunk(context.Background(), "sum", c)
	chunk := res.Outcomes
	if !ok || res.Results != nil || len(chunk) != len(want) {
		t.Fatalf("CallChunk: ok %v, results %s, %d outcomes; want %d outcomes", ok, res.Results, len(chunk), len(want))
	}
	for i, e := range c.Elems() {
		res, err := reg.Call(context.Background(), "sum", e)
		alone := task.Outcome{Result: res}
		if err != nil {
			alone = task.Outcome{Error: task.ErrorText(err)}
		}
		a, c := string(task.AppendOutcome(nil, alone)), string(task.AppendOutcome(nil, chunk[i]))
		if a != c {
			t.Errorf("input %d: alone %s, in a chunk %s", i, a, c)
		}
		if !strings.HasPrefix(c, strings.TrimSuffix(want[i], "}")) {
			t.Errorf("input %d: %s, want %s", i, c, want[i])
		}
	}

	// A good chunk decodes in one call; one result that cannot be encoded
	// (+Inf) fails alone.
	c, _ = protocol.ReadChunk([]byte(`[2, 0, 4]`), "3")
	res, _ = reg.CallChunk(context.Background(), "inv", c)
	got := string(protocol.AppendAnswer(nil, protocol.Answer{Index: 0, Results: res.Results, Outcomes: res.Outcomes}))
	if !strings.HasPrefix(got, `{"index":0,"outcomes":[{"result":0.5},{"error":"encode result:`) || !strings.HasSuffix(got, `},{"result":0.25}]}`) {
		t.Errorf("inv chunk: %s", got)
	}
	// A chunk whose every input succeeds comes back as one array of
	// results, written as it was encoded.
	c, _ = protocol.ReadChunk([]byte(`[2, 4, 0.5]`), "3")
	res, _ = reg.CallChunk(context.Background(), "inv", c)
	if string(res.Results) != `[0.5,0.25,2]` || res.Outcomes != nil {
		t.Errorf("inv chunk that succeeds: results %s, outcomes %+v; want [0.5,0.25,2] alone", res.Results, res.Outcomes)
	}
	if got := string(protocol.AppendAnswer(nil, protocol.Answer{Index: 3, Results: res.Results})); got != `{"index":3,"results":[0.5,0.25,2]}` {
		t.Errorf("its answer: %s", got)
	}
	// A chunk of objects with a null among them fails the null alone, as
	// the typed handler does for one input.
	c, _ = protocol.ReadChunk([]byte(`[{"x":1,"y":1}, null]`), "2")
	if res, _ = reg.CallChunk(context.Background(), "sum", c); res.Results != nil || len(res.Outcomes) != 2 ||
		string(res.Outcomes[0].Result) != "2" || !strings.Contains(res.Outcomes[1].Error, "want a JSON object") {
		t.Errorf("sum over an object and a null: %s, %+v", res.Results, res.Outcomes)
	}

	// A raw Handler is no chunk handler: the caller runs it input by input.
	if err := reg.Register("raw", task.HandlerFunc(func(_ context.Context, a json.RawMessage) (json.RawMessage, error) { return a, nil })); err != nil {
		t.Fatal(err)
	}
	if _, ok := reg.CallChunk(context.Background(), "raw", c); ok {
		t.Error("CallChunk ran a raw handler")
	}
}

// A chunk stops between inputs once ctx ends.
func TestTypedChunkStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	reg := task.NewRegistry()
	calls := 0
	task.MustRegister(reg, "k", func(context.Context, int) (int, error) {
		calls++
		if calls == 2 {
			cancel()
		}
		return calls, nil
	})
	c, _ := protocol.ReadChunk([]byte(`[1,2,3,4]`), "4")
	res, _ := reg.CallChunk(ctx, "k", c)
	outs := res.Outcomes
	if calls != 2 || res.Results != nil || len(outs) != 4 || string(outs[0].Result) != "1" || string(outs[1].Result) != "2" {
		t.Errorf("%d calls, outcomes %+v; want 2 calls and results 1, 2", calls, outs)
	}
	// The inputs never run fail: they must not pass for inputs with a
	// null result.
	for i := 2; i < len(outs); i++ {
		if outs[i].Error != "not run: context canceled" || outs[i].Result != nil {
			t.Errorf("input %d: %+v, want not run", i, outs[i])
		}
	}
}

type badChunk struct{ task.HandlerFunc }

func (badChunk) HandleChunk(_ context.Context, c task.Chunk) task.ChunkResult {
	switch c.N {
	case 3:
		return task.ChunkResult{Results: json.RawMessage(`[1,2]`)} // one short
	case 4:
		return task.ChunkResult{Outcomes: []task.Outcome{{Result: json.RawMessage(`1`)}}} // three short
	}
	return task.ChunkResult{Outcomes: []task.Outcome{{Result: json.RawMessage(`{"unclosed":`)}, {Result: json.RawMessage(`7`)}}}
}

// A ChunkHandler of one's own that returns a result that is not JSON
// fails that input, as Run's callers do for one result.
func TestCallChunkChecksOtherHandlersResults(t *testing.T) {
	reg := task.NewRegistry()
	if err := reg.Register("bad", badChunk{}); err != nil {
		t.Fatal(err)
	}
	c, _ := protocol.ReadChunk([]byte(`[1,2]`), "2")
	res, ok := reg.CallChunk(context.Background(), "bad", c)
	out := res.Outcomes
	if !ok || len(out) != 2 || out[0].Error != "task returned invalid JSON" || string(out[1].Result) != "7" {
		t.Errorf("outcomes %+v, want input 0 failed, input 1's 7", out)
	}
	// Results that are not one per input fail every input.
	c, _ = protocol.ReadChunk([]byte(`[1,2,3]`), "3")
	res, _ = reg.CallChunk(context.Background(), "bad", c)
	if res.Results != nil || len(res.Outcomes) != 3 || res.Outcomes[2].Error != "task returned results that are not a JSON array of 3" {
		t.Errorf("short results: %s, %+v; want every input failed", res.Results, res.Outcomes)
	}
	// So do outcomes that are not one per input.
	c, _ = protocol.ReadChunk([]byte(`[1,2,3,4]`), "4")
	res, _ = reg.CallChunk(context.Background(), "bad", c)
	if len(res.Outcomes) != 4 || res.Outcomes[3].Error != "task returned 1 outcomes for a chunk of 4" || res.Outcomes[0].Result != nil {
		t.Errorf("short outcomes: %+v; want every input failed", res.Outcomes)
	}
}
