package main

import (
	"github.com/spf13/cobra"

	"github.com/procq/procq/internal/cli"
)

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "producer",
		Short: "Submit work to procq consumer processes through NATS JetStream",
		Long: `producer puts work on a durable JetStream queue for consumer processes.
With consumers.spawn (the default) it starts the consumer processes itself and
joins them; with broker.embedded (the default) it hosts the broker in-process
when none is running.`,
	}
	cli.AddConfigFlag(root)
	cli.AddVersion(root)
	root.AddCommand(newQueueCmd(), newPoolCmd(), newPipeCmd(), newCompareCmd(), newPutCmd())
	return root
}
