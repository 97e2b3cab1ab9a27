package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/procq/procq/internal/cli"
	"github.com/procq/procq/msgq"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

func newPutCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "put NAME",
		Short: "Put JSON values, one per line on stdin, on a message queue",
		Long: `put reads one JSON value per line from stdin (blank lines are skipped) and
puts each, in order, on the message queue NAME, like multiprocessing.Queue.put;
"consumer get NAME" takes them in the same order, each by one getter. With
--maxsize the queue holds at most that many items and put waits for room (up
to queue.put_timeout). A line that is not JSON stops put with its line number;
the lines before it are already on the queue.

With --in or --at each item is a delayed item: the broker holds it and it
joins the queue at that time (a time in the past: now); put prints each
delayed item's id, one per line, and the items can be cancelled until then
(the dashboard, or Go's Task.Cancel). Delayed items need nats-server ` + protocol.SchedMinServer + `
or later.`,
		Args: cobra.ExactArgs(1),
		RunE: runPut,
	}
	cmd.Flags().Int("maxsize", 0, "bound the queue to this many items; 0 keeps its bound")
	cli.AddWhenFlags(cmd, "deliver each item")
	return cmd
}

func runPut(cmd *cobra.Command, args []string) error {
	cfg, name, err := cli.LoadQueueArg(cmd, args)
	if err != nil {
		return err
	}
	maxsize, _ := cmd.Flags().GetInt("maxsize")
	if maxsize < 0 {
		return &cli.UsageError{Err: fmt.Errorf("--maxsize must not be negative, got %d", maxsize)}
	}
	at, err := cli.When(cmd, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	s, err := openSession(ctx, cfg, cmd.OutOrStdout())
	if err != nil {
		return err
	}
	defer s.close()
	q, err := s.c.Queue(ctx, name, maxsize)
	if err != nil {
		return err
	}
	in := bufio.NewScanner(cmd.InOrStdin())
	in.Buffer(make([]byte, 64<<10), int(s.nc.MaxPayload()))
	line, n := 0, 0
	for in.Scan() {
		line++
		v := bytes.TrimSpace(in.Bytes())
		if len(v) == 0 {
			continue
		}
		if !task.Valid(v) {
			return fmt.Errorf("stdin line %d is not a JSON value: %.100q (%d items put before it)", line, v, n)
		}
		if err := putLine(ctx, q, bytes.Clone(v), at, cmd.OutOrStdout()); err != nil {
			return fmt.Errorf("stdin line %d: %w (%d items put before it)", line, err, n)
		}
		n++
	}
	if err := in.Err(); err != nil {
		return fmt.Errorf("read stdin after line %d: %w (%d items put)", line, err, n)
	}
	if !at.IsZero() {
		fmt.Fprintf(cmd.ErrOrStderr(), "producer: put %d delayed items on queue %s, due at %s\n", n, name, at.UTC().Format(time.RFC3339))
		return nil
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "producer: put %d items on queue %s\n", n, name)
	return nil
}

// putLine puts one item, delayed until at unless at is zero; a delayed
// item's id is printed on out.
func putLine(ctx context.Context, q *msgq.Queue, v []byte, at time.Time, out io.Writer) error {
	if at.IsZero() {
		return q.PutJSON(ctx, v)
	}
	d, err := q.PutJSONAt(ctx, v, at)
	if err != nil {
		var old *protocol.ErrNoSchedules
		if errors.As(err, &old) {
			return &cli.UsageError{Err: err}
		}
		return err
	}
	fmt.Fprintln(out, d.ID)
	return nil
}
