package cli

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
)

// AddWhenFlags adds --in and --at: when a command's tasks or items are
// delivered (a delayed task, a map that starts later).
func AddWhenFlags(cmd *cobra.Command, what string) {
	cmd.Flags().Duration("in", 0, what+" this long from now (e.g. 10m)")
	cmd.Flags().String("at", "", what+" at this time, RFC 3339 (e.g. 2026-12-24T18:00:00Z)")
}

// When reads --in and --at: the zero time when neither is given. A time
// in the past is no error: it is said on stderr, and the work runs now.
func When(cmd *cobra.Command, stderr io.Writer) (time.Time, error) {
	in, err := cmd.Flags().GetDuration("in")
	if err != nil {
		return time.Time{}, &UsageError{Err: err}
	}
	at, _ := cmd.Flags().GetString("at")
	inSet := cmd.Flags().Changed("in")
	switch {
	case inSet && at != "":
		return time.Time{}, &UsageError{Err: errors.New("give --in or --at, not both")}
	case inSet && in < 0:
		return time.Time{}, &UsageError{Err: fmt.Errorf("--in must not be negative, got %v", in)}
	case inSet:
		return time.Now().Add(in), nil
	}
	return timeFlag(cmd, stderr, "at", "runs now")
}

// timeFlag parses the RFC 3339 time of the named flag ("" is the zero
// time), and says on stderr, with pastMeans, when it is in the past.
func timeFlag(cmd *cobra.Command, stderr io.Writer, name, pastMeans string) (time.Time, error) {
	v, _ := cmd.Flags().GetString(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, &UsageError{Err: fmt.Errorf("--%s %q: want an RFC 3339 time such as 2026-12-24T18:00:00Z", name, v)}
	}
	if t.Before(time.Now()) {
		fmt.Fprintf(stderr, "%s: --%s %s is in the past: %s\n", cmd.Root().Name(), name, t.Format(time.RFC3339), pastMeans)
	}
	return t, nil
}

// Deadline reads --deadline: the zero time when not given. A deadline in
// the past is no error: it is said on stderr (every task will be
// dead-lettered unrun).
func Deadline(cmd *cobra.Command, stderr io.Writer) (time.Time, error) {
	return timeFlag(cmd, stderr, "deadline", "every task will be dead-lettered, none run")
}
