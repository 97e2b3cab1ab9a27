package procq_test

import (
	"context"
	"fmt"
	"log"

	"github.com/procq/procq"
	"github.com/procq/procq/demo"
)

// Map the built-in square over three inputs on two consumer processes,
// then one sumsquares by Apply. Connect reads config.yaml and PROCQ_*
// variables as the executables do; the pool starts the consumers
// (consumers.path) and Close stops them. (The test sets PROCQ_BROKER_URL,
// PROCQ_BROKER_TOKEN and PROCQ_CONSUMERS_PATH.)
func Example() {
	ctx := context.Background()
	c, err := procq.Connect(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	pool, err := c.Pool(ctx, procq.Processes(2))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close(ctx)

	squares, err := procq.Map[demo.SquareArgs, int64](ctx, pool, demo.KindSquare,
		[]demo.SquareArgs{{X: 1}, {X: 2}, {X: 3}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(squares)

	sum, err := procq.Apply[demo.SumSquaresArgs, string](ctx, pool, demo.KindSumSquares, demo.SumSquaresArgs{N: 50_000_000})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sum)
	// Output:
	// [1 4 9]
	// 41666665416666675000000
}
