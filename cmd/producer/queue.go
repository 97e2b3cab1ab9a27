package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/procq/procq/internal/cli"
	"github.com/procq/procq/producer"
)

func newQueueCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "The Queue demo: put N messages, then one sentinel per consumer",
		Long: `queue puts queue.messages messages "Message 0", "Message 1", ... on the
queue with a random pause between them, then one sentinel per consumer
(consumers.count). With consumers.spawn it starts the consumers first and joins
them at the end, exiting non-zero if any failed.`,
		Args: cobra.NoArgs,
		RunE: runQueue,
	}
	f := cmd.Flags()
	f.Int("messages", 0, "messages to put (queue.messages)")
	f.Int("consumers", 0, "consumers, sentinels and processes (consumers.count)")
	f.Bool("spawn", false, "start the consumer processes (consumers.spawn)")
	f.String("queue", "", "queue name (queue.name)")
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
	ctx := cmd.Context()
	s, err := openSession(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.close()
	return s.queueDemo(ctx, cmd)
}

func (s *session) queueDemo(ctx context.Context, cmd *cobra.Command) error {
	n := s.cfg.Consumers.Count
	return s.withWorkers(ctx, n, func(ctx context.Context, r *producer.Run) error {
		demo := queueDemo{
			Messages:  s.cfg.Queue.Messages,
			PauseMin:  s.cfg.Queue.PauseMin,
			PauseMax:  s.cfg.Queue.PauseMax,
			Consumers: n,
			Out:       cmd.OutOrStdout(),
		}
		return demo.Run(ctx, r.Queue(), r.ID())
	})
}
