package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/procq/procq"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/internal/cli"
	"github.com/procq/procq/pipe"
)

func newPipeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pipe",
		Short: "The Pipe demo: the sender end of a named pipe",
		Long: `pipe opens end A of the pipe pipe.name and sends "Hello from sender!", waits
1 s, sends "Another message." and closes; the receiver ("consumer pipe") prints
each message and then that the sender closed. With consumers.spawn the
producer starts the receiver process itself and joins it. With --reply the
receiver answers each message and the sender prints the reply.`,
		Args: cobra.NoArgs,
		RunE: runPipe,
	}
	f := cmd.Flags()
	f.String("pipe", "", "pipe name (pipe.name)")
	f.StringArray("message", []string{"Hello from sender!", "Another message."}, "a message to send (repeatable)")
	f.Duration("pause", time.Second, "pause between two messages")
	f.Bool("reply", false, "the receiver answers each message; print its replies")
	f.Bool("spawn", false, "start the receiver process (consumers.spawn)")
	return cmd
}

var pipeFlags = map[string]string{"pipe": "pipe.name", "spawn": "consumers.spawn"}

func runPipe(cmd *cobra.Command, _ []string) error {
	cfg, err := cli.Load(cmd, pipeFlags)
	if err != nil {
		return err
	}
	messages, _ := cmd.Flags().GetStringArray("message")
	pause, _ := cmd.Flags().GetDuration("pause")
	reply, _ := cmd.Flags().GetBool("reply")
	ctx := cmd.Context()
	s, err := openSession(ctx, cfg, cmd.OutOrStdout())
	if err != nil {
		return err
	}
	defer s.close()

	conn, err := s.c.Pipe(ctx, cfg.Pipe.Name, pipe.A)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var receiver *procq.Process
	if cfg.Consumers.Spawn {
		args := []string{"pipe", "--pipe", cfg.Pipe.Name}
		if reply {
			args = append(args, "--reply")
		}
		if receiver, err = s.c.Process(ctx, "receiver", s.childOut, args...); err != nil {
			_ = conn.Close()
			return err
		}
	}
	err = send(ctx, cmd, conn, messages, pause, reply)
	if cerr := conn.Close(); err == nil {
		err = cerr
	}
	if receiver == nil {
		return err
	}
	if err != nil {
		receiver.Terminate() // it would wait for messages never sent
	}
	return errors.Join(err, receiver.Join())
}

// send is the sender's side of the demo.
func send(ctx context.Context, cmd *cobra.Command, conn *pipe.Conn, messages []string, pause time.Duration, reply bool) error {
	out := cmd.OutOrStdout()
	for i, m := range messages {
		if i > 0 {
			if err := demo.Sleep(ctx, pause); err != nil {
				return err
			}
		}
		fmt.Fprintf(out, "Sender: Sending '%s'\n", m)
		if err := conn.Send(ctx, []byte(m)); err != nil {
			return err
		}
		if !reply {
			continue
		}
		r, err := conn.Recv(ctx)
		if err != nil {
			return fmt.Errorf("wait for reply: %w", err)
		}
		fmt.Fprintf(out, "Sender: Received reply '%s'\n", r)
	}
	fmt.Fprintln(out, "Sender: Closing the connection.")
	return nil
}
