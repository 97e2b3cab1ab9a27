// Command consumer takes tasks from a procq queue until it takes its
// sentinel. It runs the built-in task kinds; see package consumer/app to
// build a consumer with your own.
package main

import (
	"github.com/procq/procq/cmd/consumer/app"
	"github.com/procq/procq/demo"
)

func main() {
	app.Main(demo.Builtins())
}
