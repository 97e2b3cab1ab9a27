package app

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/procq/procq"
	"github.com/procq/procq/internal/cli"
	"github.com/procq/procq/pipe"
	"github.com/procq/procq/protocol"
)

func newPipeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pipe",
		Short: "The Pipe demo: the receiver end of a named pipe",
		Long: `pipe opens end B of the pipe pipe.name, prints every message the sender
("producer pipe") sends, in order, and exits 0 when the sender closes its end.
With --reply it answers each message. If the sender dies without closing, it
fails within about pipe.peer_timeout, saying the peer is gone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := runPipe(cmd); !cli.Stopped(cmd.Context(), err) {
				return err
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.String("pipe", "", "pipe name (pipe.name)")
	f.Bool("reply", false, "answer each message")
	f.String("name", "receiver", "name in logs")
	return cmd
}

func runPipe(cmd *cobra.Command) error {
	cfg, err := cli.Load(cmd, map[string]string{"pipe": "pipe.name"})
	if err != nil {
		return err
	}
	reply, _ := cmd.Flags().GetBool("reply")
	name, _ := cmd.Flags().GetString("name")
	ctx := cmd.Context()
	c, _, done, err := cli.Connect(ctx, cfg, "consumer", name, os.Stderr,
		procq.WithRole(protocol.RoleConsumer), procq.WithName("pipe receiver "+name))
	if err != nil {
		return err
	}
	defer done()
	conn, err := c.Pipe(ctx, cfg.Pipe.Name, pipe.B)
	if err != nil {
		return err
	}
	defer conn.Close()

	out := cmd.OutOrStdout()
	fmt.Fprintln(out, "Receiver: Waiting for messages...")
	for {
		m, err := conn.Recv(ctx)
		if errors.Is(err, io.EOF) {
			fmt.Fprintln(out, "Receiver: Connection closed by sender.")
			return conn.Close()
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "Receiver: Received '%s'\n", m)
		if reply {
			if err := conn.Send(ctx, []byte("Receiver got: "+string(m))); err != nil {
				return err
			}
		}
	}
}
