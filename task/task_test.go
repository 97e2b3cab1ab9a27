package task

import (
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"testing"
)

func TestSumSquares(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0"},
		{1, "0"},
		{2, "1"},
		{10, "285"},
		{50_000_000, "41666665416666675000000"},
	}
	for _, tt := range tests {
		got, err := SumSquares(context.Background(), tt.n)
		if err != nil {
			t.Fatalf("SumSquares(%d): %v", tt.n, err)
		}
		if got.String() != tt.want {
			t.Errorf("SumSquares(%d) = %s, want %s", tt.n, got, tt.want)
		}
		// The closed formula n(n-1)(2n-1)/6 checks the loop.
		n := big.NewInt(tt.n)
		f := new(big.Int).Mul(n, new(big.Int).Sub(n, big.NewInt(1)))
		f.Mul(f, new(big.Int).Sub(new(big.Int).Lsh(n, 1), big.NewInt(1)))
		f.Div(f, big.NewInt(6))
		if tt.n > 0 && got.Cmp(f) != 0 {
			t.Errorf("SumSquares(%d) = %s, formula says %s", tt.n, got, f)
		}
	}
}

func TestSumSquaresCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := SumSquares(ctx, 1<<30); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled SumSquares: err %v, want context.Canceled", err)
	}
	if _, err := SumSquares(context.Background(), -1); !errors.Is(err, ErrBadArgs) {
		t.Errorf("SumSquares(-1): err %v, want ErrBadArgs", err)
	}
}

func TestBuiltins(t *testing.T) {
	r := Builtins()
	tests := []struct {
		name    string
		kind    string
		args    string
		want    string
		wantErr error
	}{
		{name: "sumsquares seed", kind: KindSumSquares, args: `{"n":50000000}`, want: `"41666665416666675000000"`},
		{name: "square", kind: KindSquare, args: `{"x":7}`, want: `49`},
		{name: "square negative", kind: KindSquare, args: `{"x":-3,"sleep":"1ms"}`, want: `9`},
		{name: "square overflow", kind: KindSquare, args: `{"x":4000000000}`, wantErr: ErrBadArgs},
		{name: "square bad sleep", kind: KindSquare, args: `{"x":1,"sleep":"soon"}`, wantErr: ErrBadArgs},
		{name: "bad json", kind: KindSumSquares, args: `{"n":`, wantErr: ErrBadArgs},
		{name: "wrong type", kind: KindSumSquares, args: `{"n":"many"}`, wantErr: ErrBadArgs},
		{name: "unknown kind", kind: "nope", args: `{}`, wantErr: ErrUnknownKind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Run(context.Background(), tt.kind, json.RawMessage(tt.args))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	h := HandlerFunc(func(context.Context, json.RawMessage) (json.RawMessage, error) { panic("boom") })
	if err := r.Register("x", h); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("x", h); !errors.Is(err, ErrDuplicateKind) {
		t.Errorf("second Register: err %v, want ErrDuplicateKind", err)
	}
	if err := r.Register("a.b", h); err == nil {
		t.Errorf("Register with a dot in the kind succeeded")
	}
	_, err := r.Run(context.Background(), "x", nil)
	var pe *PanicError
	if !errors.As(err, &pe) || pe.Kind != "x" || pe.Value != "boom" {
		t.Errorf("panicking handler: err %v, want *PanicError{x, boom}", err)
	}
	if got := r.Kinds(); len(got) != 1 || got[0] != "x" {
		t.Errorf("Kinds() = %v, want [x]", got)
	}
}

func TestSplitArgs(t *testing.T) {
	args, err := SplitArgs([]byte(`[{"x":1},{"x":2}]`), "2")
	if err != nil || len(args) != 2 || string(args[1]) != `{"x":2}` {
		t.Fatalf("SplitArgs chunk: %q, %v", args, err)
	}
	if _, err := SplitArgs([]byte(`[1]`), "2"); !errors.Is(err, ErrBadArgs) {
		t.Errorf("count mismatch: err %v, want ErrBadArgs", err)
	}
	if _, err := SplitArgs([]byte(`[1]`), "zero"); !errors.Is(err, ErrBadArgs) {
		t.Errorf("bad header: err %v, want ErrBadArgs", err)
	}
	args, err = SplitArgs([]byte(`{"n":1}`), "")
	if err != nil || len(args) != 1 || string(args[0]) != `{"n":1}` {
		t.Errorf("single: %q, %v", args, err)
	}
}
