package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/procq/procq"
	"github.com/procq/procq/internal/cli"
	"github.com/procq/procq/msgq"
	"github.com/procq/procq/protocol"
)

func newGetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Take items from a message queue and print each as a JSON line",
		Long: `get takes items from the head of the message queue NAME, like
multiprocessing.Queue.get, and prints each as one line of JSON on stdout. Each
item goes to exactly one getter, in the order "producer put" put them. It takes
-n items (default 1), each waiting up to --timeout; with -n 0 it takes every
item until the queue stays empty for --timeout. It exits 1 when fewer than -n
items came ("queue empty").`,
		Args: cobra.ExactArgs(1),
		RunE: runGet,
	}
	f := cmd.Flags()
	f.IntP("count", "n", 1, "items to take; 0 takes them all")
	f.Duration("timeout", 5*time.Second, "how long each item is waited for")
	return cmd
}

func runGet(cmd *cobra.Command, args []string) error {
	cfg, name, err := cli.LoadQueueArg(cmd, args)
	if err != nil {
		return err
	}
	count, _ := cmd.Flags().GetInt("count")
	timeout, _ := cmd.Flags().GetDuration("timeout")
	if count < 0 || timeout < 0 {
		return &cli.UsageError{Err: fmt.Errorf("-n and --timeout must not be negative")}
	}
	ctx := cmd.Context()
	c, _, done, err := cli.Connect(ctx, cfg, "consumer", "get-"+name, os.Stderr,
		procq.WithRole(protocol.RoleConsumer), procq.WithName("consumer get "+name))
	if err != nil {
		return err
	}
	defer done()
	q, err := c.Queue(ctx, name, 0)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	for got := 0; count == 0 || got < count; got++ {
		it, err := q.Take(ctx, timeout)
		if errors.Is(err, msgq.ErrEmpty) && count == 0 {
			return nil
		}
		if errors.Is(err, msgq.ErrEmpty) {
			return fmt.Errorf("%w (%d of %d items within %v each)", err, got, count, timeout)
		}
		if err != nil {
			return err
		}
		// Printed first, removed after: an item that could not be written
		// (a closed pipe) goes back to the queue, not nowhere.
		if err := printItem(out, it.Data()); err != nil {
			_ = it.Return()
			return fmt.Errorf("write item %d: %w (handed back to the queue)", got+1, err)
		}
		if err := it.Done(ctx); err != nil {
			return err
		}
	}
	return nil
}

// printItem writes v as one line of JSON.
func printItem(out io.Writer, v []byte) error {
	if bytes.ContainsAny(v, "\r\n") { // one line per item, whoever put it
		var b bytes.Buffer
		if json.Compact(&b, v) == nil {
			v = b.Bytes()
		}
	}
	_, err := fmt.Fprintf(out, "%s\n", v)
	return err
}
