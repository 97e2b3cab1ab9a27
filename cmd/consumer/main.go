// Command consumer takes tasks from a procq queue until it takes its
// sentinel; "consumer pipe" is the receiver end of a pipe.
package main

import (
	"os"

	"github.com/procq/procq/internal/cli"
)

func main() {
	os.Exit(cli.Execute(newRoot(), os.Stderr))
}
