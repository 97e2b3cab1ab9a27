package task

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"math/bits"
	"time"
)

// Built-in task kinds.
const (
	KindSumSquares = "sumsquares"
	KindSquare     = "square"
)

// MaxSumSquaresN bounds n for sumsquares so the 128-bit sum cannot overflow.
const MaxSumSquaresN = 1_000_000_000_000

// SumSquaresArgs are the arguments of the sumsquares kind.
type SumSquaresArgs struct {
	N int64 `json:"n"`
}

// SquareArgs are the arguments of the square kind.
type SquareArgs struct {
	X     int64  `json:"x"`
	Sleep string `json:"sleep,omitempty"`
}

// Builtins returns a registry holding the built-in kinds: sumsquares and
// square.
func Builtins() *Registry {
	r := NewRegistry()
	mustRegister(r, KindSumSquares, HandlerFunc(sumSquaresHandler))
	mustRegister(r, KindSquare, HandlerFunc(squareHandler))
	return r
}

func mustRegister(r *Registry, kind string, h Handler) {
	if err := r.Register(kind, h); err != nil {
		panic(err)
	}
}

// SumSquares returns the sum of i*i for i in [0, n), computed by the O(n) loop
// the demos use as CPU load. It checks ctx every 2^20 iterations and returns
// ctx.Err() when it is done.
func SumSquares(ctx context.Context, n int64) (*big.Int, error) {
	if n < 0 || n > MaxSumSquaresN {
		return nil, fmt.Errorf("%w: n must be in [0, %d], got %d", ErrBadArgs, int64(MaxSumSquaresN), n)
	}
	var hi, lo uint64
	const step = 1 << 20
	for start := uint64(0); start < uint64(n); start += step {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := min(start+step, uint64(n))
		for i := start; i < end; i++ {
			pHi, pLo := bits.Mul64(i, i)
			var carry uint64
			lo, carry = bits.Add64(lo, pLo, 0)
			hi += pHi + carry
		}
	}
	sum := new(big.Int).SetUint64(hi)
	sum.Lsh(sum, 64)
	return sum.Or(sum, new(big.Int).SetUint64(lo)), nil
}

func sumSquaresHandler(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
	var args struct {
		N *int64 `json:"n"`
	}
	if err := decodeArgs(raw, &args); err != nil {
		return nil, err
	}
	if args.N == nil {
		return nil, fmt.Errorf("%w: want {\"n\": integer}, got %.100s", ErrBadArgs, raw)
	}
	sum, err := SumSquares(ctx, *args.N)
	if err != nil {
		return nil, err
	}
	// A decimal string: the sum outgrows every JSON number type.
	return Marshal(sum.String())
}

func squareHandler(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
	var in struct {
		X     *int64 `json:"x"`
		Sleep string `json:"sleep"`
	}
	if err := decodeArgs(raw, &in); err != nil {
		return nil, err
	}
	if in.X == nil {
		return nil, fmt.Errorf("%w: want {\"x\": integer}, got %.100s", ErrBadArgs, raw)
	}
	args := SquareArgs{X: *in.X, Sleep: in.Sleep}
	if args.Sleep != "" {
		d, err := time.ParseDuration(args.Sleep)
		if err != nil {
			return nil, fmt.Errorf("%w: sleep: %v", ErrBadArgs, err)
		}
		if err := Sleep(ctx, d); err != nil {
			return nil, err
		}
	}
	hi, lo := bits.Mul64(uint64(abs(args.X)), uint64(abs(args.X)))
	if hi != 0 || lo > 1<<63-1 {
		return nil, fmt.Errorf("%w: x*x overflows int64 for x=%d", ErrBadArgs, args.X)
	}
	return Marshal(int64(lo))
}

// decodeArgs decodes a task's JSON object arguments; null, a missing body
// or anything but an object is refused.
func decodeArgs(raw json.RawMessage, v any) error {
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return fmt.Errorf("%w: want a JSON object, got %.100q", ErrBadArgs, raw)
	}
	if err := Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadArgs, err)
	}
	return nil
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// Sleep waits for d or until ctx ends, and returns ctx.Err() then.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
