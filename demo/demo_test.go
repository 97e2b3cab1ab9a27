package demo

import (
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"testing"

	"github.com/procq/procq/task"
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
	if _, err := SumSquares(context.Background(), -1); !errors.Is(err, task.ErrBadArgs) {
		t.Errorf("SumSquares(-1): err %v, want task.ErrBadArgs", err)
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
		{name: "square overflow", kind: KindSquare, args: `{"x":4000000000}`, wantErr: task.ErrBadArgs},
		{name: "square bad sleep", kind: KindSquare, args: `{"x":1,"sleep":"soon"}`, wantErr: task.ErrBadArgs},
		{name: "bad json", kind: KindSumSquares, args: `{"n":`, wantErr: task.ErrBadArgs},
		{name: "wrong type", kind: KindSumSquares, args: `{"n":"many"}`, wantErr: task.ErrBadArgs},
		{name: "unknown kind", kind: "nope", args: `{}`, wantErr: task.ErrUnknownKind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Call(context.Background(), tt.kind, json.RawMessage(tt.args))
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
