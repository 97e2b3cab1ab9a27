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
	case at == "":
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, at)
	if err != nil {
		return time.Time{}, &UsageError{Err: fmt.Errorf("--at %q: want an RFC 3339 time such as 2026-12-24T18:00:00Z", at)}
	}
	if t.Before(time.Now()) {
		fmt.Fprintf(stderr, "%s: --at %s is in the past: runs now\n", cmd.Root().Name(), t.Format(time.RFC3339))
	}
	return t, nil
}

// Deadline reads --deadline: the zero time when not given. A deadline in
// the past is no error: it is said on stderr (every task will be
// dead-lettered unrun).
func Deadline(cmd *cobra.Command, stderr io.Writer) (time.Time, error) {
	v, _ := cmd.Flags().GetString("deadline")
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, &UsageError{Err: fmt.Errorf("--deadline %q: want an RFC 3339 time such as 2026-12-24T18:00:00Z", v)}
	}
	if t.Before(time.Now()) {
		fmt.Fprintf(stderr, "%s: --deadline %s is in the past: every task will be dead-lettered, none run\n", cmd.Root().Name(), t.Format(time.RFC3339))
	}
	return t, nil
}
