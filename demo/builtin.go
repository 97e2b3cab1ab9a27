package demo

import (
	"context"
	"fmt"
	"math/big"
	"math/bits"
	"time"

	"github.com/procq/procq/task"
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
// square, both typed handlers (Register).
func Builtins() *task.Registry {
	r := task.NewRegistry()
	task.MustRegister(r, KindSumSquares, sumSquaresTask)
	task.MustRegister(r, KindSquare, squareTask)
	return r
}

// SumSquares returns the sum of i*i for i in [0, n), computed by the O(n) loop
// the demos use as CPU load. It checks ctx every 2^20 iterations and returns
// ctx.Err() when it is done.
func SumSquares(ctx context.Context, n int64) (*big.Int, error) {
	if n < 0 || n > MaxSumSquaresN {
		return nil, fmt.Errorf("%w: n must be in [0, %d], got %d", task.ErrBadArgs, int64(MaxSumSquaresN), n)
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

// sumSquaresIn and squareIn are the built-ins' arguments as they are
// decoded: a pointer tells a missing number from zero.
type sumSquaresIn struct {
	N *int64 `json:"n"`
}

type squareIn struct {
	X     *int64 `json:"x"`
	Sleep string `json:"sleep"`
}

// sumSquaresTask returns the sum as a decimal string: it outgrows every
// JSON number type.
func sumSquaresTask(ctx context.Context, in sumSquaresIn) (string, error) {
	if in.N == nil {
		return "", fmt.Errorf(`%w: want {"n": integer}`, task.ErrBadArgs)
	}
	sum, err := SumSquares(ctx, *in.N)
	if err != nil {
		return "", err
	}
	return sum.String(), nil
}

func squareTask(ctx context.Context, in squareIn) (int64, error) {
	if in.X == nil {
		return 0, fmt.Errorf(`%w: want {"x": integer}`, task.ErrBadArgs)
	}
	if in.Sleep != "" {
		d, err := time.ParseDuration(in.Sleep)
		if err != nil {
			return 0, fmt.Errorf("%w: sleep: %v", task.ErrBadArgs, err)
		}
		if err := Sleep(ctx, d); err != nil {
			return 0, err
		}
	}
	x := *in.X
	hi, lo := bits.Mul64(uint64(abs(x)), uint64(abs(x)))
	if hi != 0 || lo > 1<<63-1 {
		return 0, fmt.Errorf("%w: x*x overflows int64 for x=%d", task.ErrBadArgs, x)
	}
	return int64(lo), nil
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
