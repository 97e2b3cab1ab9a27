// Command broker runs procq's embedded NATS JetStream server until SIGINT or
// SIGTERM; "broker status" shows the queues.
package main

import (
	"os"

	"github.com/procq/procq/internal/cli"
)

func main() {
	cli.TuneGC()
	os.Exit(cli.Execute(newRoot(), os.Stderr))
}
