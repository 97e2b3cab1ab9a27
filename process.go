package procq

import (
	"context"
	"io"

	"github.com/procq/procq/producer"
)

// Process is a consumer executable started by the client, like Python's
// multiprocessing.Process: it runs with the client's configuration and
// reaches the client's broker.
type Process struct {
	g    *producer.Group
	stop context.CancelFunc
}

// Process starts the consumer executable (consumers.path, by default the
// consumer beside this executable) named name, with args (a subcommand and
// its flags, e.g. "pipe", "--pipe", "demo"), its output to stdout (nil:
// io.Discard). It is not restarted when it fails. When ctx ends it is told
// to stop (SIGTERM).
func (c *Client) Process(ctx context.Context, name string, stdout io.Writer, args ...string) (*Process, error) {
	sc, err := c.spawnConfig(args, []string{name})
	if err != nil {
		return nil, err
	}
	sc.MaxRestarts = 0
	if stdout != nil {
		sc.Stdout = stdout
	}
	ctx, stop := context.WithCancel(ctx)
	g, err := producer.Spawn(ctx, *sc, c.log)
	if err != nil {
		stop()
		return nil, err
	}
	return &Process{g: g, stop: stop}, nil
}

// Join waits for the process to exit, like Process.join; a failure is a
// *producer.ChildError.
func (p *Process) Join() error {
	defer p.stop()
	return p.g.Wait()
}

// Terminate tells the process to stop (SIGTERM), like Process.terminate;
// Join waits for it.
func (p *Process) Terminate() { p.stop() }
