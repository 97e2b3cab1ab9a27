// Command producer submits work to procq consumers: the Queue demo, and more.
package main

import (
	"os"

	"github.com/procq/procq/internal/cli"
)

func main() {
	os.Exit(cli.Execute(newRoot(), os.Stderr))
}
