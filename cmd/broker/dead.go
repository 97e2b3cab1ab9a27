package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/procq/procq/internal/cli"
	"github.com/procq/procq/ops"
)

func newDeadCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dead",
		Short: "List, show, requeue and purge dead letters",
		Long: `dead works on the dead-letter stream (PROCQ_DEAD): the tasks that failed for
good or could never run, each kept with its reason, its original subject and
headers, for a week. An ID is a dead letter's sequence in that stream, as list
shows it. Each subcommand takes --json, and gives up after --wait when no
broker answers at broker.url.

Text from the messages (kinds, reasons, subjects, consumer names, headers,
bodies) is printed with its control characters and Unicode bidi controls
made visible as escapes (ESC as \x1b), so a dead letter cannot drive the
terminal; --json escapes them the JSON way.`,
	}
	cmd.PersistentFlags().String("url", "", "broker URL (broker.url)")
	cmd.PersistentFlags().Bool("json", false, "print JSON")
	addWaitFlag(cmd.PersistentFlags())
	list := &cobra.Command{Use: "list", Short: "List the dead letters, oldest first", Args: cobra.NoArgs, RunE: runDeadList}
	list.Flags().String("queue", "", "only this queue's")
	show := &cobra.Command{Use: "show ID", Short: "Show one dead letter whole: headers and body", Args: cobra.ExactArgs(1), RunE: runDeadShow}
	requeue := &cobra.Command{Use: "requeue ID | --all", Short: "Put dead letters back on their queue, then remove them",
		Long: `requeue puts each dead letter's original task back on its original subject with
its original headers and body, and removes the dead letter once the new task is
stored: a failure in between leaves a copy, never nothing. A dead letter whose
body was cut to fit the broker's max payload cannot be requeued.`,
		Args: cobra.MaximumNArgs(1), RunE: runDeadRequeue}
	requeue.Flags().Bool("all", false, "every dead letter (of --queue)")
	requeue.Flags().String("queue", "", "with --all: only this queue's")
	purge := &cobra.Command{Use: "purge", Short: "Remove dead letters", Args: cobra.NoArgs, RunE: runDeadPurge}
	purge.Flags().Duration("older-than", 0, "only those older than this (0: all)")
	purge.Flags().String("queue", "", "only this queue's")
	cmd.AddCommand(list, show, requeue, purge)
	return cmd
}

func deadLetters(cmd *cobra.Command) (*ops.DeadLetters, func(), error) {
	_, js, done, err := connectCmd(cmd, "dead")
	if err != nil {
		return nil, nil, err
	}
	d, err := ops.OpenDeadLetters(cmd.Context(), js)
	if err != nil {
		done()
		return nil, nil, err
	}
	return d, done, nil
}

// printJSON prints v as indented JSON. encoding/json escapes the C0
// controls in strings; ops.PrintableJSON escapes DEL, the C1 and the bidi
// controls too, so the JSON decodes to the same value and cannot drive a
// terminal either.
func printJSON(out io.Writer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := out.Write(ops.PrintableJSON(b.Bytes()))
	return err
}

// cell is message text for one table cell or one-line field: every
// control (newline and tab included) and bidi control made visible.
func cell(s string) string { return ops.Printable(s, false) }

// text is message text printed whole: newlines and tabs kept, every other
// control and bidi control made visible.
func text(s string) string { return ops.Printable(s, true) }

func runDeadList(cmd *cobra.Command, _ []string) error {
	d, done, err := deadLetters(cmd)
	if err != nil {
		return err
	}
	defer done()
	queue, _ := cmd.Flags().GetString("queue")
	dls, err := d.List(cmd.Context(), queue)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
		return printJSON(out, dls)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ID\tQUEUE\tKIND\tDELIVERED\tWHEN\tSUBJECT\tREASON\n")
	now := time.Now()
	for _, dl := range dls {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s ago\t%s\t%s\n", dl.ID, cell(dl.Queue), cell(cmp.Or(dl.Kind, "-")), dl.Delivered,
			ageText(now.Sub(dl.Time)), cell(dl.Subject), oneLine(dl.Reason, 160))
	}
	fmt.Fprintf(tw, "%d dead letters\n", len(dls))
	return tw.Flush()
}

// oneLine is s on one line, its runs of white space made one space, its
// controls made visible, cut after n bytes (on a character boundary).
func oneLine(s string, n int) string {
	s = cell(strings.Join(strings.Fields(s), " "))
	if len(s) > n {
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		return s[:n] + "..."
	}
	return s
}

// printableError is an error whose text may carry message text, printed
// with its controls made visible.
type printableError struct{ err error }

func (e *printableError) Error() string { return text(e.err.Error()) }
func (e *printableError) Unwrap() error { return e.err }

func deadID(arg string) (uint64, error) {
	id, err := strconv.ParseUint(arg, 10, 64)
	if err != nil || id == 0 {
		return 0, &cli.UsageError{Err: fmt.Errorf("%q is not a dead letter ID (a number from \"broker dead list\")", arg)}
	}
	return id, nil
}

func runDeadShow(cmd *cobra.Command, args []string) error {
	id, err := deadID(args[0])
	if err != nil {
		return err
	}
	d, done, err := deadLetters(cmd)
	if err != nil {
		return err
	}
	defer done()
	dl, err := d.Show(cmd.Context(), id)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
		return printJSON(out, dl)
	}
	fmt.Fprintf(out, "Dead letter %d of queue %s, %s\nReason: %s\nSubject: %s\nDelivered: %d time(s), last by %s\nHeaders:\n",
		dl.ID, cell(dl.Queue), dl.Time.Format(time.RFC3339), text(dl.Reason), cell(dl.Subject), dl.Delivered, cell(cmp.Or(dl.Consumer, "-")))
	for _, k := range slices.Sorted(maps.Keys(dl.Header)) {
		for _, v := range dl.Header[k] {
			fmt.Fprintf(out, "  %s: %s\n", cell(k), cell(v))
		}
	}
	fmt.Fprintf(out, "Body (%d bytes):\n%s\n", len(dl.Body), text(dl.Body))
	return nil
}

func runDeadRequeue(cmd *cobra.Command, args []string) error {
	all, _ := cmd.Flags().GetBool("all")
	queue, _ := cmd.Flags().GetString("queue")
	if all == (len(args) == 1) {
		return &cli.UsageError{Err: fmt.Errorf("give one dead letter ID or --all")}
	}
	var ids []uint64
	if !all {
		id, err := deadID(args[0])
		if err != nil {
			return err
		}
		ids = []uint64{id}
	}
	d, done, err := deadLetters(cmd)
	if err != nil {
		return err
	}
	defer done()
	ctx := cmd.Context()
	if all {
		dls, err := d.List(ctx, queue)
		if err != nil {
			return err
		}
		for _, dl := range dls {
			ids = append(ids, dl.ID)
		}
	}
	type requeued struct {
		ID   uint64 `json:"id"`
		Task uint64 `json:"task"`
	}
	var out []requeued
	for _, id := range ids {
		seq, err := d.Requeue(ctx, id)
		if err != nil {
			// The error may quote the dead letter's subject.
			return &printableError{fmt.Errorf("%w (%d requeued before it)", err, len(out))}
		}
		out = append(out, requeued{ID: id, Task: seq})
	}
	if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
		return printJSON(cmd.OutOrStdout(), out)
	}
	for _, r := range out {
		fmt.Fprintf(cmd.OutOrStdout(), "dead letter %d requeued as task %d\n", r.ID, r.Task)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%d requeued\n", len(out))
	return nil
}

func runDeadPurge(cmd *cobra.Command, _ []string) error {
	older, _ := cmd.Flags().GetDuration("older-than")
	queue, _ := cmd.Flags().GetString("queue")
	if older < 0 {
		return &cli.UsageError{Err: fmt.Errorf("--older-than must not be negative")}
	}
	d, done, err := deadLetters(cmd)
	if err != nil {
		return err
	}
	defer done()
	n, err := d.Purge(cmd.Context(), queue, older)
	if err != nil {
		return err
	}
	if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
		return printJSON(cmd.OutOrStdout(), map[string]int{"purged": n})
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%d dead letters purged\n", n)
	return nil
}
