package main

import (
	"github.com/spf13/cobra"

	"github.com/procq/procq/internal/cli"
)

func newQueueCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "The Queue demo: put N messages, then one sentinel per consumer",
		Long: `queue puts queue.messages messages "Message 0", "Message 1", ... on the
queue with a random pause between them, then one sentinel per consumer
(consumers.count). With consumers.spawn it starts the consumers first and joins
them at the end, exiting non-zero if any failed. With --priority high (or low)
the messages go on that level of the queue.`,
		Args: cobra.NoArgs,
		RunE: runQueue,
	}
	f := cmd.Flags()
	f.Int("messages", 0, "messages to put (queue.messages)")
	f.Int("consumers", 0, "consumers, sentinels and processes (consumers.count)")
	f.Bool("spawn", false, "start the consumer processes (consumers.spawn)")
	f.String("queue", "", "queue name (queue.name)")
	cli.AddPriorityFlag(cmd)
	return cmd
}

var queueFlags = map[string]string{
	"messages":  "queue.messages",
	"consumers": "consumers.count",
	"spawn":     "consumers.spawn",
	"queue":     "queue.name",
}

func runQueue(cmd *cobra.Command, _ []string) error {
	cfg, err := cli.Load(cmd, queueFlags)
	if err != nil {
		return err
	}
	priority, err := cli.Priority(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	s, err := openSession(ctx, cfg, cmd.OutOrStdout())
	if err != nil {
		return err
	}
	defer s.close()
	n := cfg.Consumers.Count
	p, err := s.pool(ctx, n)
	if err != nil {
		return err
	}
	demo := queueDemo{
		Messages:  cfg.Queue.Messages,
		PauseMin:  cfg.Queue.PauseMin,
		PauseMax:  cfg.Queue.PauseMax,
		Consumers: n,
		Priority:  priority,
		Out:       cmd.OutOrStdout(),
	}
	return s.finish(ctx, p, demo.put(ctx, p))
}
