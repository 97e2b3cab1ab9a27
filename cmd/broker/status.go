package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/procq/procq/internal/cli"
	"github.com/procq/procq/link"
	"github.com/procq/procq/task"
)

func newStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show procq's streams and queues on the broker at broker.url",
		Args:  cobra.NoArgs,
		RunE:  runStatus,
	}
	cmd.Flags().String("url", "", "broker URL (broker.url)")
	return cmd
}

func runStatus(cmd *cobra.Command, _ []string) error {
	cfg, err := cli.Load(cmd, map[string]string{"url": "broker.url"})
	if err != nil {
		return err
	}
	logger, closeLog, err := cli.Logger("broker-status", "", cfg.Log, os.Stderr)
	if err != nil {
		return err
	}
	defer closeLog.Close()
	ctx := cmd.Context()
	nc, js, err := cli.Connect(ctx, cfg, "broker status", logger)
	if err != nil {
		return err
	}
	defer link.Close(nc)
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "STREAM\tMESSAGES\tBYTES\tCONSUMERS\n")
	for _, name := range []string{task.TasksStream, task.ResultsStream, task.DeadStream} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\n", name)
			continue
		}
		st := s.CachedInfo().State
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", name, st.Msgs, st.Bytes, st.Consumers)
	}
	fmt.Fprintf(tw, "\nQUEUE\tPENDING\tIN FLIGHT\tREDELIVERED\tWAITING PULLS\n")
	if s, err := js.Stream(ctx, task.TasksStream); err == nil {
		for ci := range s.ListConsumers(ctx).Info() {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", task.QueueOfFilter(ci.Config.FilterSubject),
				ci.NumPending, ci.NumAckPending, ci.NumRedelivered, ci.NumWaiting)
		}
	}
	return tw.Flush()
}
