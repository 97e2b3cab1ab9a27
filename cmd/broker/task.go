package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/procq/procq"
	"github.com/procq/procq/internal/cli"
)

func newTaskCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "task",
		Short: "Act on one task by its id",
		Long:  "task cancel ID cancels one task by its id; see broker task cancel --help.",
	}
	cmd.PersistentFlags().String("url", "", "broker URL (broker.url)")
	addWaitFlag(cmd.PersistentFlags())
	cancel := &cobra.Command{Use: "cancel ID", Short: "Cancel one task", Args: cobra.ExactArgs(1), RunE: runTaskCancel,
		Long: `task cancel ID cancels one task by its id (its Procq-Task-Id): a delayed
task's id (broker schedule list shows them), or "<map>.<index>" for an input
of a running map (a producer's log names its map; AsyncResult.ID in Go). A
delayed task is removed before it fires; a queued task never runs; a running
one has its handler's context cancelled. The map's result for it is an error
"task cancelled"; nothing else of the map is disturbed. An id no delayed task
or running map has ("no such task") and a task that has its result already
("already finished") exit 2.`}
	cmd.AddCommand(cancel)
	return cmd
}

func runTaskCancel(cmd *cobra.Command, args []string) error {
	c, _, done, err := connectCmd(cmd, "task")
	if err != nil {
		return err
	}
	defer done()
	err = c.CancelTask(cmd.Context(), args[0])
	if errors.Is(err, procq.ErrNoSuchTask) || errors.Is(err, procq.ErrFinished) {
		return &cli.InputError{Err: err}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "task %s cancelled\n", args[0])
	return nil
}
