package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/procq/procq/protocol"
)

// AddPriorityFlag adds --priority to a command that puts tasks on a task
// queue.
func AddPriorityFlag(cmd *cobra.Command) {
	cmd.Flags().String("priority", "default", "the tasks' priority: high, default or low; consumers take a higher priority's tasks first")
}

// Priority reads --priority; an unknown level is a UsageError naming it.
func Priority(cmd *cobra.Command) (protocol.Priority, error) {
	s, err := cmd.Flags().GetString("priority")
	if err != nil {
		return "", err
	}
	p, err := protocol.ParsePriority(s)
	if err != nil {
		return "", &UsageError{Err: fmt.Errorf("--priority %w", err)}
	}
	return p, nil
}
