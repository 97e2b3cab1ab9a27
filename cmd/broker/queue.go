package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

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

// queueArg checks a queue name argument: bad input exits 2.
func queueArg(name string) error {
	if err := task.ValidName(name); err != nil {
		return &cli.UsageError{Err: fmt.Errorf("queue: %w", err)}
	}
	return nil
}

// queueError says an unknown queue as bad input (exit 2).
func queueError(err error) error {
	if errors.Is(err, ops.ErrNoQueue) {
		return &cli.UsageError{Err: err}
	}
	return err
}

func runQueuePause(cmd *cobra.Command, args []string) error {
	d, _ := cmd.Flags().GetDuration("for")
	if d < 0 {
		return &cli.UsageError{Err: fmt.Errorf("--for must not be negative, got %v", d)}
	}
	if err := queueArg(args[0]); err != nil {
		return err
	}
	c, _, done, err := connectCmd(cmd, "queue")
	if err != nil {
		return err
	}
	defer done()
	until := time.Now().Add(ops.Forever)
	if d > 0 {
		until = time.Now().Add(d)
	}
	if err := c.PauseQueue(cmd.Context(), args[0], until); err != nil {
		return queueError(err)
	}
	if d > 0 {
		fmt.Fprintf(cmd.OutOrStdout(), "queue %s paused until %s\n", args[0], until.UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintf(cmd.OutOrStdout(), "queue %s paused until resumed\n", args[0])
	}
	return nil
}

func runQueueResume(cmd *cobra.Command, args []string) error {
	if err := queueArg(args[0]); err != nil {
		return err
	}
	c, _, done, err := connectCmd(cmd, "queue")
	if err != nil {
		return err
	}
	defer done()
	if err := c.ResumeQueue(cmd.Context(), args[0]); err != nil {
		return queueError(err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "queue %s resumed\n", args[0])
	return nil
}
