package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/procq/procq"
	"github.com/procq/procq/internal/cli"
	"github.com/procq/procq/ops"
	"github.com/procq/procq/task"
)

func newQueueCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "Pause and resume a task queue",
		Long: `queue pause stops a task queue's consumers from taking work (sentinels
included) until --for has passed or queue resume ends the pause; the
consumers stay connected, producers may still put, and the queue takes up
where it left off. It is JetStream's consumer pause on the queue's shared
durable (nats-server 2.11 or later). broker status shows "paused until".
An unknown queue exits 2; each subcommand gives up after --wait when no
broker answers at broker.url.`,
	}
	cmd.PersistentFlags().String("url", "", "broker URL (broker.url)")
	addWaitFlag(cmd.PersistentFlags())
	pause := &cobra.Command{Use: "pause QUEUE [--for DURATION]", Short: "Pause a task queue", Args: cobra.ExactArgs(1),
		RunE: runQueuePause}
	pause.Flags().Duration("for", 0, "how long (0: until queue resume)")
	resume := &cobra.Command{Use: "resume QUEUE", Short: "Resume a paused task queue", Args: cobra.ExactArgs(1),
		RunE: runQueueResume}
	cmd.AddCommand(pause, resume)
	return cmd
}

func runQueuePause(cmd *cobra.Command, args []string) error {
	d, _ := cmd.Flags().GetDuration("for")
	if d < 0 {
		return &cli.UsageError{Err: fmt.Errorf("--for must not be negative, got %v", d)}
	}
	return onQueue(cmd, args[0], func(c *procq.Client) (string, error) {
		if d == 0 {
			return "paused until resumed", c.PauseQueue(cmd.Context(), args[0], time.Now().Add(ops.Forever))
		}
		until := time.Now().Add(d)
		return "paused until " + until.UTC().Format(time.RFC3339), c.PauseQueue(cmd.Context(), args[0], until)
	})
}

func runQueueResume(cmd *cobra.Command, args []string) error {
	return onQueue(cmd, args[0], func(c *procq.Client) (string, error) {
		return "resumed", c.ResumeQueue(cmd.Context(), args[0])
	})
}

// onQueue checks the queue's name (bad: exit 2), connects, does act and
// prints "queue <name> <what act did>"; an unknown queue exits 2.
func onQueue(cmd *cobra.Command, queue string, act func(*procq.Client) (string, error)) error {
	if err := task.ValidName(queue); err != nil {
		return &cli.UsageError{Err: fmt.Errorf("queue: %w", err)}
	}
	c, _, done, err := connectCmd(cmd, "queue")
	if err != nil {
		return err
	}
	defer done()
	did, err := act(c)
	if errors.Is(err, ops.ErrNoQueue) {
		return &cli.InputError{Err: err}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "queue %s %s\n", queue, did)
	return nil
}
