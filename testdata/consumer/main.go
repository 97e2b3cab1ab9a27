// Command consumer is the consumer the procq package's tests spawn: the
// built-in kinds and "add", which sums its list of arguments (Starmap).
package main

import (
	"context"

	"github.com/procq/procq/consumer/app"
	"github.com/procq/procq/task"
)

func main() {
	reg := task.Builtins()
	task.MustRegister(reg, "add", func(_ context.Context, xs []int) (int, error) {
		sum := 0
		for _, x := range xs {
			sum += x
		}
		return sum, nil
	})
	app.Main(reg)
}
