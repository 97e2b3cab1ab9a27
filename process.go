package procq

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/procq/procq/config"
	"github.com/procq/procq/producer"
	"github.com/procq/procq/protocol"
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

// spawnConfig says how to start consumer processes named names with args
// under the client's configuration, reaching its broker: broker.url with
// the token the client connected with (perhaps read from the broker's
// token file, or an embedded broker's). The path is consumers.path, or
// the consumer executable beside this one.
func (c *Client) spawnConfig(args, names []string) (*producer.SpawnConfig, error) {
	cfg := c.cfg
	path := cfg.Consumers.Path
	if path == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find consumer executable: %w", err)
		}
		path = filepath.Join(filepath.Dir(self), "consumer")
	}
	// What may differ from the loaded values; a later variable wins.
	env := append(cfg.Environ(),
		config.EnvName("queue.name")+"="+cfg.Queue.Name,
		config.EnvName("broker.url")+"="+cfg.Broker.URL)
	if token := c.nc.Opts.Token; token != "" {
		env = append(env, config.EnvName("broker.token")+"="+token)
	}
	if cfg.File != "" {
		args = append([]string{protocol.ArgConfig, cfg.File}, args...)
	}
	sc := &producer.SpawnConfig{Path: path, Args: args, Env: env, Names: names,
		MaxRestarts: cfg.Consumers.MaxRestarts, Stdout: io.Discard}
	if host, port, err := net.SplitHostPort(cfg.Metrics.Listen); err == nil {
		if p, err := strconv.Atoi(port); err == nil && p > 0 {
			// One metrics port each, consecutive: 9464, 9465, ...
			sc.ChildEnv = func(i int) []string {
				return []string{config.EnvName("metrics.listen") + "=" + net.JoinHostPort(host, strconv.Itoa(p+i))}
			}
		}
	}
	return sc, nil
}

// consumerNames are C-1, C-2, ... C-n.
func consumerNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = "C-" + strconv.Itoa(i+1)
	}
	return names
}
