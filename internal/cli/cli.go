// Package cli holds what the three executables share: config loading from
// cobra flags, the per-process logger, and the mapping of errors to exit
// codes.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/procq/procq/config"
	"github.com/procq/procq/consumer"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// Exit codes of every procq executable (protocol's child-process table).
const (
	ExitOK      = protocol.ExitOK
	ExitFailure = protocol.ExitFailure
	ExitUsage   = protocol.ExitUsage
	// ExitRetired: a consumer retired after consumers.max_tasks tasks
	// (consumer.ErrRetired); the producer that spawned it starts a fresh
	// one.
	ExitRetired = protocol.ExitRetired
	// ExitTimeLimit: a consumer stopped a task at its hard time limit
	// (consumer.ErrTimeLimit); the producer that spawned it starts a
	// fresh one.
	ExitTimeLimit = protocol.ExitTimeLimit
)

// InputError is a well-formed command given a value that names nothing
// it can act on (no such task, no such queue): exit 2, without the usage
// hint.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// UsageError is bad usage: a bad flag or argument.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Stopped reports whether err only says that ctx was cancelled: for a
// consumer or a broker, a stop by SIGINT/SIGTERM is a clean exit, even one
// that comes while it is still starting.
func Stopped(ctx context.Context, err error) bool {
	return ctx.Err() != nil && errors.Is(err, context.Canceled)
}

// ExitCode maps an error to the process exit code: 0 for nil, 2 for bad
// usage or bad configuration, 1 for anything else.
func ExitCode(err error) int {
	var ce *config.Error
	var ue *UsageError
	var ie *InputError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ce), errors.As(err, &ue), errors.As(err, &ie):
		return ExitUsage
	case errors.Is(err, consumer.ErrRetired):
		return ExitRetired
	case errors.Is(err, consumer.ErrTimeLimit):
		return ExitTimeLimit
	default:
		return ExitFailure
	}
}

// PanicError is a panic recovered in a command: a bug, exit code 1 (the
// Go runtime's own code for a panic, 2, is kept for bad usage).
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("internal error: panic: %v\n%s", e.Value, e.Stack)
}

// Execute runs root with a context cancelled by SIGINT or SIGTERM, prints
// the error, if any, to stderr, and returns the exit code. A panic in the
// command is recovered and exits 1.
func Execute(root *cobra.Command, stderr io.Writer) (code int) {
	defer func() {
		if v := recover(); v != nil {
			fmt.Fprintf(stderr, "%s: %v\n", root.Name(), &PanicError{Value: v, Stack: debug.Stack()})
			code = ExitFailure
		}
	}()
	defer startProfile(stderr)()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, protocol.StopSignal)
	defer stop()
	root.SilenceErrors = true
	root.SilenceUsage = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{Err: err} })
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	if !ran(cmd) {
		// Cobra rejected the command line before any command ran.
		err = &UsageError{Err: err}
	}
	fmt.Fprintf(stderr, "%s: %v\n", root.Name(), err)
	var ue *UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return ExitCode(err)
}

// gcPercent is the garbage collection target (GOGC) of the consumer and
// the broker unless the environment sets GOGC: their mains call TuneGC. A
// consumer's live heap is the few messages it holds, so collecting at 5x
// the live heap rather than 2x costs it a few MiB and saves the collector a
// fifth of the CPU of a map of tiny tasks (BENCHMARKS.md, "GOGC"). The
// producer keeps Go's default: its heap holds a map's window, and its
// memory is to stay flat however many inputs stream through it.
const gcPercent = 400

// TuneGC sets gcPercent unless GOGC is set.
func TuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
}

// ran reports whether cmd's RunE was entered (see Flags.Load).
func ran(cmd *cobra.Command) bool {
	return cmd != nil && cmd.Annotations != nil && cmd.Annotations[annotationRan] == "1"
}

const annotationRan = "procq-ran"

// AddConfigFlag adds the persistent --config flag to root.
func AddConfigFlag(root *cobra.Command) {
	root.PersistentFlags().String("config", "", "config file (default ./config.yaml, which may be missing)")
}

// Load loads the configuration for cmd: --config, then each flag of cmd
// named in keys overriding the config key it maps to. It also marks cmd as
// run, so that errors from here on are not taken for usage errors.
func Load(cmd *cobra.Command, keys map[string]string) (*config.Config, error) {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[annotationRan] = "1"
	path, _ := cmd.Flags().GetString("config")
	flags := make(map[*pflag.Flag]string, len(keys))
	for name, key := range keys {
		f := cmd.Flags().Lookup(name)
		if f == nil {
			return nil, fmt.Errorf("internal: no flag --%s for %s", name, key)
		}
		flags[f] = key
	}
	return config.Load(config.Options{Path: path, Flags: flags})
}

// LoadQueueArg loads the configuration of a command whose one argument
// names a message queue, and checks the name (a bad one is a usage error).
func LoadQueueArg(cmd *cobra.Command, args []string) (*config.Config, string, error) {
	cfg, err := Load(cmd, nil)
	if err != nil {
		return nil, "", err
	}
	if err := task.ValidName(args[0]); err != nil {
		return nil, "", &UsageError{Err: fmt.Errorf("queue name: %w", err)}
	}
	return cfg, args[0], nil
}
