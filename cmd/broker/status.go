package main

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/procq/procq/internal/cli"
	"github.com/procq/procq/internal/wire"
	"github.com/procq/procq/link"
	"github.com/procq/procq/task"
)

func newStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show procq's streams (leader, replicas), queues and cluster nodes on the broker at broker.url",
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
	nc, js, err := wire.Connect(ctx, cfg, "broker status", logger)
	if err != nil {
		return err
	}
	defer link.Close(nc)
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "STREAM\tMESSAGES\tBYTES\tCONSUMERS\tLEADER\tREPLICAS\n")
	nodes := map[string]bool{}
	if name := nc.ConnectedServerName(); name != "" {
		nodes[name] = true
	}
	for _, name := range task.Streams() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\n", name)
			continue
		}
		info := s.CachedInfo()
		st := info.State
		leader, replicas := replicaState(info.Cluster, info.Config.Replicas, nodes)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", name, st.Msgs, st.Bytes, st.Consumers, leader, replicas)
	}
	if cluster := nc.ConnectedClusterName(); cluster != "" {
		fmt.Fprintf(tw, "\nCLUSTER %s\tNODES %d\tCONNECTED TO %s\n", cluster, len(nodes), nc.ConnectedServerName())
		for _, n := range slices.Sorted(maps.Keys(nodes)) {
			fmt.Fprintf(tw, "node\t%s\n", n)
		}
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

// replicaState is a stream's leader and its replicas as "3/3 current" or
// "2/3 current, n2 lagging 120 msgs" (a peer offline counts as lagging);
// every node named is added to nodes.
func replicaState(ci *jetstream.ClusterInfo, want int, nodes map[string]bool) (leader, replicas string) {
	if ci == nil || ci.Leader == "" {
		if ci != nil && want > 1 {
			return "(none: election)", fmt.Sprintf("?/%d", want)
		}
		return "-", fmt.Sprintf("%d/%d current", 1, max(want, 1))
	}
	nodes[ci.Leader] = true
	current := 1 // the leader
	var lagging []string
	for _, p := range ci.Replicas {
		nodes[p.Name] = true
		switch {
		case p.Current && !p.Offline:
			current++
		case p.Offline:
			lagging = append(lagging, p.Name+" offline")
		default:
			lagging = append(lagging, fmt.Sprintf("%s lagging %d ops", p.Name, p.Lag))
		}
	}
	replicas = fmt.Sprintf("%d/%d current", current, max(want, 1))
	if len(lagging) > 0 {
		replicas += ", " + strings.Join(lagging, ", ")
	}
	return ci.Leader, replicas
}
