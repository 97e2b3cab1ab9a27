package procq_test

import (
	"context"
	"fmt"
	"log"

	"github.com/procq/procq"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/task"
)

// Both sides through one client: a worker in this process serves a kind
// of its own, and a pool maps it, results in input order. Connect reads
// config.yaml and PROCQ_* variables as the executables do (the test sets
// PROCQ_BROKER_URL and PROCQ_BROKER_TOKEN).
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := procq.Connect(ctx, procq.WithQueue("example"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// The worker side: serve "double" in this process.
	type Args struct {
		X int `json:"x"`
	}
	reg := task.NewRegistry()
	task.MustRegister(reg, "double", func(ctx context.Context, a Args) (int, error) { return 2 * a.X, nil })
	w, err := c.Worker(reg)
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- w.Run(ctx) }()

	// The producer side: map it.
	pool, err := c.Pool(ctx)
	if err != nil {
		log.Fatal(err)
	}
	doubled, err := procq.Map[Args, int](ctx, pool, "double", []Args{{1}, {2}, {3}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(doubled)
	if err := pool.Close(ctx); err != nil {
		log.Fatal(err)
	}
	cancel() // the worker finishes what it holds and returns
	fmt.Println(<-served)
	// Output:
	// [2 4 6]
	// <nil>
}

// Map the built-in square over three inputs on two consumer processes,
// then one sumsquares by Apply: the pool starts the consumers
// (consumers.path; the test sets PROCQ_CONSUMERS_PATH) and Close gives
// each its sentinel and waits for them.
func Example_processes() {
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
