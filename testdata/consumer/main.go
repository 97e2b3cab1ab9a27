// Command consumer is the consumer the tests spawn: the built-in kinds;
// "add", which sums its list of arguments (Starmap); and "firsttry", which
// fails the first time it runs for a marker file and succeeds after (the
// file remembers across processes and deliveries); and "stubborn", the
// square of its integer argument, except that a negative one makes it hang
// for an hour, ignoring its context (a handler only a hard time limit
// stops).
package main

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/procq/procq/cmd/consumer/app"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/task"
)

func main() {
	reg := demo.Builtins()
	task.MustRegister(reg, "add", func(_ context.Context, xs []int) (int, error) {
		sum := 0
		for _, x := range xs {
			sum += x
		}
		return sum, nil
	})
	task.MustRegister(reg, "stubborn", func(_ context.Context, x int) (int, error) {
		if x < 0 {
			time.Sleep(time.Hour)
		}
		return x * x, nil
	})
	task.MustRegister(reg, "firsttry", func(_ context.Context, a struct {
		Marker string `json:"marker"`
	}) (string, error) {
		f, err := os.OpenFile(a.Marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			f.Close()
			return "", errors.New("first try fails")
		}
		return "second try works", nil
	})
	app.Main(reg)
}
