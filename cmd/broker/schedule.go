package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/procq/procq"
	"github.com/procq/procq/internal/cli"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/schedule"
	"github.com/procq/procq/task"
)

func newScheduleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Add, list, remove and run periodic schedules; list delayed tasks",
		Long: `schedule manages periodic schedules: named, durable schedules that put one task
of a kind, with the same arguments, on a queue at each of their times, by a
cron expression (six fields, seconds first, in UTC or --tz) or at an interval
(--every, at least 1s). The broker fires them (JetStream message schedules in
the PROCQ_SCHED stream): no procq process needs to run for a schedule to fire,
and with queue.replicas: 3 they outlive a node. A fired task is an ordinary
task of its queue: retries, dead letters and metrics apply, and a firing runs
once even when it reaches the queue twice.

Each subcommand gives up after --wait when no broker answers at broker.url.
A bad name, cron expression, time zone or interval, or a broker without
message schedules (nats-server older than ` + protocol.SchedMinServer + `), exits 2 and creates
nothing.`,
	}
	cmd.PersistentFlags().String("url", "", "broker URL (broker.url)")
	addWaitFlag(cmd.PersistentFlags())

	add := &cobra.Command{
		Use:   "add NAME --queue Q --kind K [--args JSON] (--cron EXPR [--tz ZONE] | --every D)",
		Short: "Create a periodic schedule",
		Example: `  broker schedule add report --queue default --kind message --args '{"text":"hi"}' --every 1m
  broker schedule add nightly --queue default --kind sumsquares --args '{"n":1000}' --cron "0 0 3 * * *" --tz Europe/Berlin`,
		Args: cobra.ExactArgs(1),
		RunE: runScheduleAdd,
	}
	f := add.Flags()
	f.String("queue", "", "the queue its tasks go to (default queue.name)")
	f.String("kind", "", "the task kind (required)")
	f.String("args", "null", "the task's arguments, one JSON value")
	f.String("cron", "", `six-field cron expression, seconds first ("0 */5 * * * *"), or @hourly, @daily, @weekly, @monthly, @yearly`)
	f.Duration("every", 0, "interval, at least 1s (instead of --cron)")
	f.String("tz", "", "IANA time zone --cron is read in (default UTC)")

	list := &cobra.Command{Use: "list", Short: "List the periodic schedules with their next firing, and the delayed tasks",
		Args: cobra.NoArgs, RunE: runScheduleList}
	list.Flags().Bool("json", false, "print JSON")
	remove := &cobra.Command{Use: "remove NAME", Short: "Remove a periodic schedule (its tasks already queued still run)",
		Args: cobra.ExactArgs(1), RunE: runScheduleRemove}
	run := &cobra.Command{Use: "run NAME", Short: "Fire a periodic schedule once now, besides its own times",
		Args: cobra.ExactArgs(1), RunE: runScheduleRun}
	cmd.AddCommand(add, list, remove, run)
	return cmd
}

// scheduleError says err for a person; bad input (a bad spec, a broker
// without schedules) is a usage error: exit 2.
func scheduleError(err error) error {
	var old *protocol.ErrNoSchedules
	if errors.Is(err, schedule.ErrBadSpec) || errors.As(err, &old) {
		return &cli.UsageError{Err: err}
	}
	return err
}

func runScheduleAdd(cmd *cobra.Command, args []string) error {
	f := cmd.Flags()
	queue, _ := f.GetString("queue")
	kind, _ := f.GetString("kind")
	rawArgs, _ := f.GetString("args")
	cronExpr, _ := f.GetString("cron")
	every, _ := f.GetDuration("every")
	tz, _ := f.GetString("tz")
	name := args[0]
	if !task.Valid([]byte(rawArgs)) {
		return &cli.UsageError{Err: fmt.Errorf("--args: not a JSON value: %.100q", rawArgs)}
	}
	var when procq.When
	switch {
	case cronExpr != "" && every != 0:
		return &cli.UsageError{Err: errors.New("give --cron or --every, not both")}
	case cronExpr != "":
		when = procq.Cron(cronExpr).InZone(tz)
	case every != 0:
		when = procq.Every(every).InZone(tz)
	default:
		return &cli.UsageError{Err: errors.New("give --cron EXPR or --every DURATION")}
	}
	var opts []procq.Option
	if queue != "" {
		opts = append(opts, procq.WithQueue(queue))
	}
	c, _, done, err := connectCmd(cmd, "schedule", opts...)
	if err != nil {
		return err
	}
	defer done()
	// Checked before the queue is declared: a bad spec creates nothing.
	spec := schedule.Spec{Name: name, Queue: c.Config().Queue.Name, Kind: kind, Args: json.RawMessage(rawArgs),
		Cron: cronExpr, Every: every, TZ: tz}
	if err := spec.Validate(); err != nil {
		return scheduleError(err)
	}
	if err := c.Schedule(cmd.Context(), name, kind, json.RawMessage(rawArgs), when); err != nil {
		return scheduleError(err)
	}
	e, err := schedule.Get(cmd.Context(), c.JetStream(), name, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "schedule %s added: %s task %s on queue %s, next at %s\n",
		name, whenText(e), kind, e.Queue, e.Next.Format(time.RFC3339))
	return nil
}

// whenText says when a schedule fires.
func whenText(e schedule.Entry) string {
	if e.Every > 0 {
		return "every " + e.Every.String()
	}
	if e.TZ != "" {
		return fmt.Sprintf("cron %q in %s", e.Cron, e.TZ)
	}
	return fmt.Sprintf("cron %q", e.Cron)
}

// scheduleList is what list prints as JSON.
type scheduleList struct {
	Schedules []schedule.Entry       `json:"schedules"`
	Delayed   []schedule.PendingTask `json:"delayed"`
}

func runScheduleList(cmd *cobra.Command, _ []string) error {
	c, _, done, err := connectCmd(cmd, "schedule")
	if err != nil {
		return err
	}
	defer done()
	ctx := cmd.Context()
	var l scheduleList
	if l.Schedules, err = c.Schedules(ctx); err != nil {
		return err
	}
	if l.Delayed, err = c.PendingTasks(ctx); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
		if l.Schedules == nil {
			l.Schedules = []schedule.Entry{}
		}
		if l.Delayed == nil {
			l.Delayed = []schedule.PendingTask{}
		}
		return printJSON(out, l)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "SCHEDULE\tQUEUE\tKIND\tWHEN\tNEXT\tARGS\n")
	for _, e := range l.Schedules {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", cell(e.Name), cell(e.Queue), cell(e.Kind), cell(whenText(e)),
			e.Next.Format(time.RFC3339), oneLine(string(e.Args), 80))
	}
	fmt.Fprintf(tw, "%d schedules\n\n", len(l.Schedules))
	fmt.Fprintf(tw, "DELAYED TASK\tQUEUE\tKIND\tDUE\tIN\n")
	now := time.Now()
	for _, p := range l.Delayed {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cell(p.ID), cell(p.Queue), cell(cmp.Or(p.Kind, "-")),
			p.Due.Format(time.RFC3339), max(p.Due.Sub(now), 0).Round(time.Second))
	}
	fmt.Fprintf(tw, "%d delayed tasks not fired\n", len(l.Delayed))
	return tw.Flush()
}

func runScheduleRemove(cmd *cobra.Command, args []string) error {
	c, _, done, err := connectCmd(cmd, "schedule")
	if err != nil {
		return err
	}
	defer done()
	if err := c.Unschedule(cmd.Context(), args[0]); err != nil {
		return scheduleError(err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "schedule %s removed\n", args[0])
	return nil
}

func runScheduleRun(cmd *cobra.Command, args []string) error {
	c, _, done, err := connectCmd(cmd, "schedule")
	if err != nil {
		return err
	}
	defer done()
	id, err := c.RunSchedule(cmd.Context(), args[0])
	if err != nil {
		return scheduleError(err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "schedule %s fired now: task %s\n", args[0], id)
	return nil
}
