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

	"github.com/procq/procq/config"
	"github.com/procq/procq/internal/cli"
	"github.com/procq/procq/msgq"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
	"github.com/procq/procq/unique"
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
or later.

With --unique KEY --unique-for D put puts one item (stdin holds one value)
that holds KEY on the queue until a getter takes it or D has passed,
whichever comes first; it prints the item's id. A put of the same KEY
meanwhile puts nothing: it says "duplicate", naming the item that holds
the key, and exits 0, or 1 with --strict.`,
		Args: cobra.ExactArgs(1),
		RunE: runPut,
	}
	cmd.Flags().Int("maxsize", 0, "bound the queue to this many items; 0 keeps its bound")
	cli.AddWhenFlags(cmd, "deliver each item")
	cmd.Flags().String("unique", "", "put the one item unique by this key (1 to 255 bytes, no '*', '>' or spaces)")
	cmd.Flags().Duration("unique-for", 0, "hold the --unique key at most this long (e.g. 10m; whole seconds)")
	cmd.Flags().Bool("strict", false, "with --unique: exit 1, not 0, when the key is held")
	return cmd
}

// uniqueFlags reads --unique, --unique-for and --strict: the zero options
// when --unique is not given.
func uniqueFlags(cmd *cobra.Command) (o protocol.TaskOptions, strict bool, err error) {
	key, _ := cmd.Flags().GetString("unique")
	ttl, _ := cmd.Flags().GetDuration("unique-for")
	strict, _ = cmd.Flags().GetBool("strict")
	usage := func(format string, args ...any) error { return &cli.UsageError{Err: fmt.Errorf(format, args...)} }
	switch {
	case !cmd.Flags().Changed("unique") && cmd.Flags().Changed("unique-for"):
		return o, false, usage("--unique-for needs --unique KEY")
	case !cmd.Flags().Changed("unique") && strict:
		return o, false, usage("--strict needs --unique KEY")
	case !cmd.Flags().Changed("unique"):
		return o, false, nil
	}
	if err := unique.CheckKey(key); err != nil {
		return o, false, usage("--unique: %w", err)
	}
	switch {
	case !cmd.Flags().Changed("unique-for"):
		return o, false, usage("--unique needs --unique-for, how long the key is held at most (e.g. 10m)")
	case ttl <= 0:
		return o, false, usage("--unique-for must be positive, got %v", ttl)
	}
	return protocol.TaskOptions{Unique: key, UniqueFor: ttl}, strict, nil
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
	uo, strict, err := uniqueFlags(cmd)
	if err != nil {
		return err
	}
	if uo.Unique != "" {
		// One item, read whole before anything is put.
		v, err := oneValue(cmd.InOrStdin())
		if err != nil {
			return err
		}
		uo.At = at
		return putUnique(cmd, cfg, name, maxsize, v, uo, strict)
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

// oneValue reads the one JSON value of stdin (blank lines skipped) for
// put --unique; a second value is bad usage, and nothing is put.
func oneValue(r io.Reader) ([]byte, error) {
	in := bufio.NewScanner(r)
	in.Buffer(make([]byte, 64<<10), 64<<20)
	var v []byte
	line := 0
	for in.Scan() {
		line++
		b := bytes.TrimSpace(in.Bytes())
		switch {
		case len(b) == 0:
			continue
		case v != nil:
			return nil, &cli.UsageError{Err: fmt.Errorf("--unique puts one item, and stdin line %d holds a second value; nothing put", line)}
		case !task.Valid(b):
			return nil, fmt.Errorf("stdin line %d is not a JSON value: %.100q; nothing put", line, b)
		}
		v = bytes.Clone(b)
	}
	if err := in.Err(); err != nil {
		return nil, fmt.Errorf("read stdin after line %d: %w; nothing put", line, err)
	}
	if v == nil {
		return nil, &cli.UsageError{Err: errors.New("--unique puts one item, and stdin holds none; nothing put")}
	}
	return v, nil
}

// putUnique puts the item v unique by o.Unique and prints its id; a
// duplicate is said on stderr and exits 0, or 1 when strict.
func putUnique(cmd *cobra.Command, cfg *config.Config, name string, maxsize int, v []byte, o protocol.TaskOptions, strict bool) error {
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
	d, lock, err := q.PutJSONWith(ctx, v, o)
	var dup *unique.DuplicateError
	switch {
	case errors.As(err, &dup) && strict:
		return fmt.Errorf("%w; nothing put", dup)
	case errors.As(err, &dup):
		fmt.Fprintf(cmd.ErrOrStderr(), "producer: %v; nothing put\n", dup)
		return nil
	case err != nil:
		var old *protocol.ErrNoSchedules
		if errors.As(err, &old) {
			return &cli.UsageError{Err: err}
		}
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), lock.ID)
	held := fmt.Sprintf("unique key %q held until taken, for %v at most", o.Unique, unique.TTL(o.UniqueFor))
	if d != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "producer: put 1 delayed item on queue %s, due at %s, %s\n", name, d.Due.Format(time.RFC3339), held)
		return nil
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "producer: put 1 item on queue %s, %s\n", name, held)
	return nil
}
