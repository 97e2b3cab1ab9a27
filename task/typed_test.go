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
	elems, err := protocol.SplitArgs(body, "7")
	if err != nil {
		t.Fatal(err)
	}
	chunk, ok := reg.CallChunk(context.Background(), "sum", body, elems)
	if !ok || len(chunk) != len(want) {
		t.Fatalf("CallChunk: ok %v, %d outcomes; want %d", ok, len(chunk), len(want))
	}
	for i, e := range elems {
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
	body = []byte(`[2, 0, 4]`)
	elems, _ = protocol.SplitArgs(body, "3")
	outs, _ := reg.CallChunk(context.Background(), "inv", body, elems)
	got := string(protocol.AppendAnswer(nil, protocol.Answer{Index: 0, Outcomes: outs}))
	if !strings.HasPrefix(got, `{"index":0,"outcomes":[{"result":0.5},{"error":"encode result:`) || !strings.HasSuffix(got, `},{"result":0.25}]}`) {
		t.Errorf("inv chunk: %s", got)
	}

	// A raw Handler is no chunk handler: the caller runs it input by input.
	if err := reg.Register("raw", task.HandlerFunc(func(_ context.Context, a json.RawMessage) (json.RawMessage, error) { return a, nil })); err != nil {
		t.Fatal(err)
	}
	if _, ok := reg.CallChunk(context.Background(), "raw", body, elems); ok {
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
	body := []byte(`[1,2,3,4]`)
	elems, _ := protocol.SplitArgs(body, "4")
	outs, _ := reg.CallChunk(ctx, "k", body, elems)
	if calls != 2 || string(outs[0].Result) != "1" || string(outs[1].Result) != "2" {
		t.Errorf("%d calls, outcomes %+v; want 2 calls and results 1, 2", calls, outs)
	}
}

type badChunk struct{ task.HandlerFunc }

func (badChunk) HandleChunk(context.Context, []byte, []json.RawMessage) []task.Outcome {
	return []task.Outcome{{Result: json.RawMessage(`{"unclosed":`)}, {Result: json.RawMessage(`7`)}}
}

// A ChunkHandler of one's own that returns a result that is not JSON
// fails that input, as Run's callers do for one result.
func TestCallChunkChecksOtherHandlersResults(t *testing.T) {
	reg := task.NewRegistry()
	if err := reg.Register("bad", badChunk{}); err != nil {
		t.Fatal(err)
	}
	body := []byte(`[1,2]`)
	elems, _ := protocol.SplitArgs(body, "2")
	out, ok := reg.CallChunk(context.Background(), "bad", body, elems)
	if !ok || out[0].Error != "task returned invalid JSON" || string(out[1].Result) != "7" {
		t.Errorf("outcomes %+v, want input 0 failed, input 1's 7", out)
	}
}
