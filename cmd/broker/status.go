package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/procq/procq"
	"github.com/procq/procq/internal/cli"
	"github.com/procq/procq/link"
	"github.com/procq/procq/ops"
)

func newStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show queues, consumers, runs, maps, pipes, message queues, streams and cluster nodes on the broker at broker.url",
		Long: `status reads the broker's state from JetStream itself and the processes'
heartbeats: each queue (pending, in flight, redelivered, dead letters, age of
the oldest unfinished task, tasks run in the last minute; pending and in flight
per priority once a queue holds high- or low-priority tasks), each live consumer
(what it runs and since when), open runs and maps with their progress, open
pipes, message queues, procq's streams (leader and replicas) and, in a cluster, the nodes.
--json prints the same as one JSON document; --watch redraws it every
--interval until interrupted. With no broker at broker.url it gives up
after --wait.`,
		Args: cobra.NoArgs,
		RunE: runStatus,
	}
	f := cmd.Flags()
	f.String("url", "", "broker URL (broker.url)")
	f.Bool("json", false, "print one JSON document")
	f.Bool("watch", false, "redraw every --interval until interrupted")
	f.Duration("interval", 2*time.Second, "how often --watch redraws")
	addWaitFlag(f)
	return cmd
}

// defaultWait bounds how long the read-only tools wait for a broker: a
// person at a terminal asking what runs, not a process that may start
// before its broker (broker.connect_timeout).
const defaultWait = 5 * time.Second

// addWaitFlag adds --wait to a command that connects with connectCmd.
func addWaitFlag(f *pflag.FlagSet) {
	f.Duration("wait", defaultWait, "wait at most this long for the broker at broker.url (overrides broker.connect_timeout)")
}

// connectCmd connects a broker subcommand to broker.url (--url), waiting
// for it at most --wait (which stands for broker.connect_timeout here).
// The subcommand's log goes to its file only: its stderr is for the one
// line that says why it failed.
func connectCmd(cmd *cobra.Command, what string, opts ...procq.Option) (*procq.Client, jetstream.JetStream, func(), error) {
	cfg, err := cli.Load(cmd, map[string]string{"url": "broker.url"})
	if err != nil {
		return nil, nil, nil, err
	}
	wait, err := cmd.Flags().GetDuration("wait")
	if err != nil {
		return nil, nil, nil, err
	}
	if wait <= 0 {
		return nil, nil, nil, &cli.UsageError{Err: fmt.Errorf("--wait must be positive, got %v", wait)}
	}
	cfg.Broker.ConnectTimeout = wait
	c, _, done, err := cli.Connect(cmd.Context(), cfg, "broker-"+what, "", io.Discard, append(opts, procq.WithName("broker "+what))...)
	if err != nil {
		return nil, nil, nil, connectError(cfg.Broker.URL, wait, err)
	}
	return c, c.JetStream(), done, nil
}

// connectError is err, a failure to connect to brokerURL, said for a
// person: when no broker answered within wait, one line naming broker.url
// and --wait with the last error met; otherwise err's own text. Either way
// a user and password (or a token) in broker.url are left out.
func connectError(brokerURL string, wait time.Duration, err error) error {
	if !errors.Is(err, link.ErrUnreachable) {
		return err // link's errors show the URL without user info already
	}
	cause := err
	if m, ok := err.(interface{ Unwrap() []error }); ok {
		if errs := m.Unwrap(); len(errs) > 0 {
			cause = errs[len(errs)-1]
		}
	}
	return &connectFailure{err: err, msg: fmt.Sprintf("no broker answered at broker.url %s within %v (--wait): %v", link.Redact(brokerURL), wait, cause)}
}

// connectFailure is a connect error said for a person.
type connectFailure struct {
	msg string
	err error
}

func (e *connectFailure) Error() string { return e.msg }
func (e *connectFailure) Unwrap() error { return e.err }

func runStatus(cmd *cobra.Command, _ []string) error {
	asJSON, _ := cmd.Flags().GetBool("json")
	watch, _ := cmd.Flags().GetBool("watch")
	every, _ := cmd.Flags().GetDuration("interval")
	if every < 100*time.Millisecond {
		return &cli.UsageError{Err: fmt.Errorf("--interval must be at least 100ms, got %v", every)}
	}
	_, js, done, err := connectCmd(cmd, "status")
	if err != nil {
		return err
	}
	defer done()
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	for {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := ops.Snapshot(sctx, js)
		cancel()
		if err != nil {
			return err
		}
		if watch && !asJSON {
			fmt.Fprint(out, "\033[H\033[2J") // home, clear: redraw in place
		}
		if asJSON {
			err = printJSON(out, st)
		} else {
			err = printStatus(out, st)
		}
		if err != nil || !watch {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

// printStatus prints st as tables; every name and text in it, which comes
// from the processes' heartbeats and the broker, is printed with cell.
func printStatus(out io.Writer, st *ops.Status) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "QUEUE\tPENDING\tIN FLIGHT\tREDELIVERED\tWAITING PULLS\tDEAD\tOLDEST\tCONSUMERS\tLAST MINUTE\tSCHEDULED\n")
	for _, q := range st.Queues {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t%d\n", cell(q.Name), q.Pending, q.InFlight, q.Redelivered,
			q.Waiting, q.Dead, ageText(q.OldestAge), q.Consumers, q.LastMinute, q.Scheduled)
	}
	for _, q := range st.Queues {
		if q.PausedUntil != nil {
			fmt.Fprintf(tw, "%s\n", pausedText(q.Name, *q.PausedUntil, st.Time))
		}
		if q.TimedOut+q.Cancelled+q.Duplicates > 0 {
			fmt.Fprintf(tw, "queue %s: %d tasks timed out, %d cancelled, %d duplicate puts refused\n",
				cell(q.Name), q.TimedOut, q.Cancelled, q.Duplicates)
		}
		if q.UniqueKeys > 0 {
			fmt.Fprintf(tw, "queue %s: %s held\n", cell(q.Name), uniqueText(q.UniqueKeys))
		}
	}
	printPriorities(tw, st.Queues)
	fmt.Fprintf(tw, "\nCONSUMER\tQUEUE\tPID\tHOST\tRUNNING\tIN HAND\tDONE\tLAST MINUTE\tUP\n")
	for _, c := range st.Consumers {
		running := "idle"
		if c.Task != "" {
			running = cell(c.Task) + " for " + ageText(st.Time.Sub(c.Since))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\t%s\n", cell(c.Name), cell(c.Queue), c.PID, cell(c.Host), running,
			c.InHand, c.Done, c.LastMinute, ageText(st.Time.Sub(c.Started)))
	}
	if len(st.Runs) > 0 {
		fmt.Fprintf(tw, "\nRUN\tQUEUE\tSTATE\tSENTINELS\tSTARTED\n")
		for _, r := range st.Runs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s ago\n", cell(r.Run), cell(r.Queue), cell(r.State), r.Sentinels, ageText(st.Time.Sub(r.Started)))
		}
	}
	if len(st.Maps) > 0 {
		fmt.Fprintf(tw, "\nMAP\tQUEUE\tKIND\tPRODUCER\tDONE\tSUBMITTED\tTOTAL\tRUNNING FOR\n")
		for _, m := range st.Maps {
			total := "?"
			if m.Total >= 0 {
				total = fmt.Sprint(m.Total)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s pid %d\t%d\t%d\t%s\t%s\n", cell(m.ID), cell(m.Queue), cell(m.Kind), cell(m.Host), m.PID,
				m.Done, m.Submitted, total, ageText(st.Time.Sub(m.Started)))
		}
	}
	if len(st.Pipes) > 0 {
		fmt.Fprintf(tw, "\nPIPE\tENDS OPEN\n")
		for _, p := range st.Pipes {
			fmt.Fprintf(tw, "%s\t%s\n", cell(p.Name), cell(strings.Join(p.Ends, " ")))
		}
	}
	if len(st.MsgQueues) > 0 {
		fmt.Fprintf(tw, "\nMESSAGE QUEUE\tITEMS\tMAXSIZE\tSCHEDULED\n")
		for _, q := range st.MsgQueues {
			maxsize := "-"
			if q.MaxSize > 0 {
				maxsize = fmt.Sprint(q.MaxSize)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\n", cell(q.Name), q.Items, maxsize, q.Scheduled)
		}
		for _, q := range st.MsgQueues {
			if q.UniqueKeys+int(q.Duplicates) > 0 {
				fmt.Fprintf(tw, "message queue %s: %s held, %d duplicate puts refused\n", cell(q.Name), uniqueText(q.UniqueKeys), q.Duplicates)
			}
		}
	}
	if len(st.Schedules) > 0 {
		fmt.Fprintf(tw, "\nSCHEDULE\tQUEUE\tKIND\tWHEN\tNEXT\n")
		for _, e := range st.Schedules {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s (in %s)\n", cell(e.Name), cell(e.Queue), cell(e.Kind), cell(whenText(e)),
				e.Next.Format(time.RFC3339), ageText(e.Next.Sub(st.Time)))
		}
	}
	if len(st.Delayed) > 0 {
		fmt.Fprintf(tw, "\nDELAYED TASK\tQUEUE\tKIND\tDUE\n")
		for i, p := range st.Delayed {
			if i == maxDelayedShown {
				fmt.Fprintf(tw, "... %d more (broker schedule list)\n", len(st.Delayed)-i)
				break
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s (in %s)\n", cell(p.ID), cell(p.Queue), cell(cmp.Or(p.Kind, "-")),
				p.Due.Format(time.RFC3339), ageText(p.Due.Sub(st.Time)))
		}
	}
	fmt.Fprintf(tw, "\nSTREAM\tMESSAGES\tBYTES\tCONSUMERS\tLEADER\tREPLICAS\n")
	for _, s := range st.Streams {
		leader := cell(cmp.Or(s.Leader, "-"))
		if s.Current == 0 && s.Replicas > 1 {
			leader = "(none: election)"
		}
		replicas := fmt.Sprintf("%d/%d current", s.Current, s.Replicas)
		for _, l := range s.Lagging {
			replicas += ", " + cell(l) + " lagging"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", cell(s.Name), s.Messages, s.Bytes, s.Consumers, leader, replicas)
	}
	if c := st.Cluster; c != nil {
		fmt.Fprintf(tw, "\nCLUSTER %s\tNODES %d\tCONNECTED TO %s\n", cell(c.Name), len(c.Nodes), cell(c.ConnectedTo))
		for _, n := range c.Nodes {
			fmt.Fprintf(tw, "node\t%s\n", cell(n))
		}
	}
	return tw.Flush()
}

// pausedText says a queue's pause: until resumed, or until a time.
func pausedText(queue string, until, now time.Time) string {
	if until.Sub(now) > ops.Forever/2 {
		return fmt.Sprintf("queue %s paused until resumed", cell(queue))
	}
	return fmt.Sprintf("queue %s paused until %s (in %s)", cell(queue), until.UTC().Format(time.RFC3339), ageText(until.Sub(now)))
}

// uniqueText counts unique keys: "1 unique key", "3 unique keys".
func uniqueText(n int) string {
	if n == 1 {
		return "1 unique key"
	}
	return fmt.Sprintf("%d unique keys", n)
}

// maxDelayedShown bounds the delayed tasks status prints; schedule list
// shows them all.
const maxDelayedShown = 10

// ageText is d rounded for reading: "-" for none.
func ageText(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// printPriorities prints the queues' pending and in-flight tasks per
// priority, when a queue holds tasks of another priority than the
// default.
func printPriorities(tw io.Writer, queues []ops.QueueStatus) {
	header := false
	for _, q := range queues {
		if !q.Prioritised() {
			continue
		}
		if !header {
			fmt.Fprintf(tw, "\nQUEUE\tPRIORITY\tPENDING\tIN FLIGHT\n")
			header = true
		}
		for _, l := range q.Priorities {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", cell(q.Name), l.Priority, l.Pending, l.InFlight)
		}
	}
}
