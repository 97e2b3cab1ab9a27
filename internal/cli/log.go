package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/procq/procq"
	"github.com/procq/procq/config"
)

// Logger returns the process's logger: one line per event appended to
// <log.dir>/<role>[-<name>].log at log.level, and to stderr at
// log.stderr_level; each line carries time, level, role, name (the role
// when the process has no name of its own) and pid.
// A log file procq creates is mode 0600 (owner only), and a log dir it
// creates 0700: a log may carry task errors and subjects, never meant for
// other users of the host. An existing dir or file keeps its mode.
// Close the returned closer at exit.
func Logger(role, name string, cfg config.Log, stderr io.Writer) (*slog.Logger, io.Closer, error) {
	var fileLevel, errLevel slog.Level
	if err := fileLevel.UnmarshalText([]byte(cfg.Level)); err != nil {
		return nil, nil, &config.Error{Source: "config", Key: "log.level", Err: err}
	}
	if err := errLevel.UnmarshalText([]byte(cfg.StderrLevel)); err != nil {
		return nil, nil, &config.Error{Source: "config", Key: "log.stderr_level", Err: err}
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("log dir: %w", err)
	}
	file := role
	if name != "" {
		file += "-" + name
	}
	f, err := os.OpenFile(filepath.Join(cfg.Dir, file+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("log file: %w", err)
	}
	h := slog.NewMultiHandler(
		slog.NewTextHandler(f, &slog.HandlerOptions{Level: fileLevel}),
		slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: errLevel}),
	)
	logger := slog.New(h).With("role", role, "name", cmp.Or(name, role), "pid", os.Getpid())
	return logger, f, nil
}

// Connect opens what a command of the executables works with: its log
// (see Logger: role, name, and stderr at log.stderr_level) and a client of
// procq's front door with cfg and opts. done closes both.
func Connect(ctx context.Context, cfg *config.Config, role, name string, stderr io.Writer, opts ...procq.Option) (c *procq.Client, logger *slog.Logger, done func(), err error) {
	logger, closeLog, err := Logger(role, name, cfg.Log, stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	c, err = procq.Connect(ctx, append([]procq.Option{procq.WithConfig(cfg), procq.WithLogger(logger)}, opts...)...)
	if err != nil {
		closeLog.Close()
		return nil, nil, nil, err
	}
	return c, logger, func() { c.Close(); closeLog.Close() }, nil
}
