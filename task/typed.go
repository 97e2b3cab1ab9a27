package task

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/procq/procq/task/jsonscan"
)

// Func is a typed task handler: procq decodes the task's JSON arguments
// into A and encodes the R it returns as the JSON result, so the handler
// itself never sees JSON. Register adds one to a Registry.
type Func[A, R any] func(ctx context.Context, args A) (R, error)

// Register adds the typed handler f under kind. Arguments are decoded and
// results encoded in one place, once per message: a chunk of many inputs
// is decoded into a []A in one call and its results encoded as a []R in
// one call, which is what makes chunks of tiny tasks cheap. An input that
// does not decode into A fails alone with ErrBadArgs; when A is a struct,
// its input must be a JSON object. The JSON wire format is the same as for
// a Handler.
func Register[A, R any](r *Registry, kind string, f Func[A, R]) error {
	if f == nil {
		return fmt.Errorf("register %s: nil handler", kind)
	}
	var a A
	object := reflect.TypeOf(&a).Elem().Kind() == reflect.Struct
	return r.Register(kind, typed[A, R]{kind: kind, f: f, object: object})
}

// MustRegister is Register that panics on error, for registries built at
// start-up.
func MustRegister[A, R any](r *Registry, kind string, f Func[A, R]) {
	if err := Register(r, kind, f); err != nil {
		panic(err)
	}
}

// ChunkHandler is a Handler that also runs every input of a chunk at once.
// Registry.CallChunk uses it; Register's typed handlers are ChunkHandlers.
type ChunkHandler interface {
	Handler
	// HandleChunk runs the inputs of c, in order. When every input
	// succeeded it may return their results as one JSON array; else one
	// outcome per input. It stops early, leaving the rest without
	// outcome, once ctx ends.
	HandleChunk(ctx context.Context, c Chunk) ChunkResult
}

// Chunk is the body of a task message that carries several inputs.
type Chunk struct {
	// Body is a valid JSON array of N elements, one per input.
	Body []byte
	N    int
	// Objects reports whether every element is a JSON object.
	Objects bool
}

// Elems splits the body into its N elements, as sub-slices of it.
func (c Chunk) Elems() []json.RawMessage {
	elems, _ := jsonscan.SplitArray(c.Body, c.N)
	return elems
}

// ChunkResult is what a chunk's handler returns: its results as one JSON
// array when every input succeeded, else one outcome per input.
type ChunkResult struct {
	// Results, when not nil, is a JSON array of one result per input,
	// in order: every input succeeded. Outcomes is nil then.
	Results json.RawMessage
	// Outcomes is one outcome per input, in order, when Results is nil.
	Outcomes []Outcome
}

type typed[A, R any] struct {
	kind   string
	f      Func[A, R]
	object bool // A is a struct: its JSON must be an object
}

// encodesOwnResults marks the typed handler, whose results come from
// Marshal and need no second check.
func (typed[A, R]) encodesOwnResults() {}

// decode decodes one input into a.
func (t typed[A, R]) decode(raw json.RawMessage, a *A) error {
	if t.object {
		if b := bytes.TrimSpace(raw); len(b) == 0 || b[0] != '{' {
			return fmt.Errorf("%w: want a JSON object, got %.100q", ErrBadArgs, raw)
		}
	}
	if err := Unmarshal(raw, a); err != nil {
		return fmt.Errorf("%w: %v", ErrBadArgs, err)
	}
	return nil
}

// call runs f, turning a panic into a *PanicError.
func (t typed[A, R]) call(ctx context.Context, a A) (r R, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Kind: t.kind, Value: v}
		}
	}()
	return t.f(ctx, a)
}

// Handle runs one input.
func (t typed[A, R]) Handle(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
	var a A
	if err := t.decode(raw, &a); err != nil {
		return nil, err
	}
	r, err := t.call(ctx, a)
	if err != nil {
		return nil, err
	}
	b, err := Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	return b, nil
}

// HandleChunk decodes the whole chunk in one call, and every input alone
// only when that fails (to find which ones are bad); it encodes the
// results in one call, returned as they are when every input succeeded,
// and alone only when one of them cannot be encoded.
func (t typed[A, R]) HandleChunk(ctx context.Context, c Chunk) ChunkResult {
	var out []Outcome // nil while every input succeeds
	fail := func(i int, o Outcome) {
		if out == nil {
			out = make([]Outcome, c.N)
		}
		out[i] = o
	}
	args := make([]A, 0, c.N)
	if (t.object && !c.Objects) || Unmarshal(c.Body, &args) != nil || len(args) != c.N {
		args = make([]A, c.N)
		for i, e := range c.Elems() {
			if err := t.decode(e, &args[i]); err != nil {
				fail(i, Outcome{Error: ErrorText(err)})
			}
		}
	}
	results := make([]R, c.N)
	ran := 0
	for i := range args {
		if ctx.Err() != nil {
			break
		}
		ran++
		if out != nil && out[i].Error != "" {
			continue
		}
		r, err := t.call(ctx, args[i])
		if err != nil {
			fail(i, Outcome{Error: ErrorText(err), Retry: IsRetry(err)})
			continue
		}
		results[i] = r
	}
	// Inputs the call never came to (ctx ended: a stop, a time limit) fail,
	// rather than pass for inputs with no result.
	for i := ran; i < c.N; i++ {
		fail(i, Outcome{Error: "not run: " + context.Cause(ctx).Error()})
	}
	enc, err := Marshal(results[:ran])
	if err == nil && out == nil && ran == c.N {
		return ChunkResult{Results: enc}
	}
	if out == nil {
		out = make([]Outcome, c.N)
	}
	if err == nil {
		if parts, ok := jsonscan.SplitArray(enc, ran); ok && len(parts) == ran {
			for i, p := range parts {
				if out[i].Error == "" {
					out[i].Result = p
				}
			}
			return ChunkResult{Outcomes: out}
		}
	}
	for i := range ran {
		if out[i].Error != "" {
			continue
		}
		b, err := Marshal(results[i])
		if err != nil {
			out[i].Error = "encode result: " + err.Error()
			continue
		}
		out[i].Result = b
	}
	return ChunkResult{Outcomes: out}
}

// ErrorText is err's text as an outcome carries it: never empty.
func ErrorText(err error) string {
	if s := err.Error(); s != "" {
		return s
	}
	return "task failed with an empty error"
}
