// Package wire builds each client-side package's configuration from the
// loaded config: config loads and validates only; this is the one place
// that knows both config's keys and the packages' own Config types. The
// server side is in package serve, so that clients do not link the NATS
// server.
package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/config"
	"github.com/procq/procq/consumer"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/link"
	"github.com/procq/procq/msgq"
	"github.com/procq/procq/pipe"
	"github.com/procq/procq/producer"
	"github.com/procq/procq/protocol"
)

// ClientConfig is how a process named name reaches the broker.
func ClientConfig(c *config.Config, name string) link.Config {
	return link.Config{
		URL:       c.Broker.URL,
		Token:     c.Broker.Token,
		TokenFile: c.Broker.TokenPath(),
		Timeout:   c.Broker.ConnectTimeout,
		Name:      name,
	}
}

// QueueConfig describes the configured queue.
func QueueConfig(c *config.Config) protocol.QueueConfig {
	return protocol.QueueConfig{
		Name:          c.Queue.Name,
		AckWait:       c.Queue.AckWait,
		MaxAckPending: c.Queue.MaxAckPending,
		MaxMessages:   c.Queue.MaxMessages,
		Replicas:      c.Queue.Replicas,
		ResultsMaxAge: c.Pool.ResultsMaxAge,
	}
}

// WorkerConfig configures a consumer named name that prints to out.
func WorkerConfig(c *config.Config, name string, out io.Writer) consumer.Config {
	return consumer.Config{
		Name:        name,
		Concurrency: c.Consumers.Concurrency,
		Prefetch:    c.Consumers.Prefetch,
		MaxDeliver:  c.Queue.MaxDeliver,
		MaxTasks:    c.Consumers.MaxTasks,
		Out:         out,
		Labelled:    demo.Labelled(out),

		RetryBackoff:    c.Consumers.RetryBackoff,
		RetryBackoffMax: c.Consumers.RetryBackoffMax,
	}
}

// EnsureQueue declares the configured queue's topology. A replica count
// the broker cannot place is a configuration error naming queue.replicas.
func EnsureQueue(ctx context.Context, js jetstream.JetStream, c *config.Config, logger *slog.Logger) (*protocol.Topology, error) {
	qc := QueueConfig(c)
	qc.Logger = logger
	topo, err := link.Retry(ctx, c.Broker.ConnectTimeout, logger, func(ctx context.Context) (*protocol.Topology, error) {
		return protocol.EnsureQueue(ctx, js, qc)
	})
	return topo, replicasErr(c, err)
}

// PipeConfig configures a pipe end.
func PipeConfig(c *config.Config) pipe.Config {
	return pipe.Config{PeerTimeout: c.Pipe.PeerTimeout, Replicas: c.Queue.Replicas}
}

// OpenPipe opens an end of the configured pipe.
func OpenPipe(ctx context.Context, js jetstream.JetStream, c *config.Config, end pipe.End, logger *slog.Logger) (*pipe.Conn, error) {
	conn, err := pipe.Open(ctx, js, c.Pipe.Name, end, PipeConfig(c), logger)
	return conn, replicasErr(c, err)
}

func replicasErr(c *config.Config, err error) error {
	if errors.Is(err, link.ErrReplicas) {
		return c.ErrorFor("queue.replicas", err)
	}
	return err
}

// Connect connects a client process to the configured broker, waiting for it
// up to broker.connect_timeout, and opens JetStream. Close the connection
// with link.Close.
func Connect(ctx context.Context, cfg *config.Config, name string, logger *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := link.Connect(ctx, ClientConfig(cfg, name), logger)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// OpenMsgQueue opens the named message queue with the configured put
// timeout and replicas; maxsize > 0 bounds it.
func OpenMsgQueue(ctx context.Context, js jetstream.JetStream, c *config.Config, name string, maxsize int, logger *slog.Logger) (*msgq.Queue, error) {
	q, err := msgq.Open(ctx, js, name, msgq.Config{MaxSize: maxsize, PutTimeout: c.Queue.PutTimeout, Replicas: c.Queue.Replicas}, logger)
	return q, replicasErr(c, err)
}

// SpawnConfig says how to start consumer processes named names with args
// (a subcommand and its flags) under this configuration, reaching the
// broker as reach says (the embedded one's address and token, say);
// restarts is how many times a dead one is replaced. The path is
// consumers.path, or the consumer executable beside this one.
func SpawnConfig(c *config.Config, reach link.Config, args, names []string, restarts int) (*producer.SpawnConfig, error) {
	path := c.Consumers.Path
	if path == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find consumer executable: %w", err)
		}
		path = filepath.Join(filepath.Dir(self), "consumer")
	}
	// What may differ from the loaded values; a later variable wins.
	env := append(c.Environ(), config.EnvName("queue.name")+"="+c.Queue.Name)
	if reach.URL != "" {
		env = append(env, config.EnvName("broker.url")+"="+reach.URL)
	}
	if reach.Token != "" {
		env = append(env, config.EnvName("broker.token")+"="+reach.Token)
	}
	if c.File != "" {
		args = append([]string{"--config", c.File}, args...)
	}
	sc := &producer.SpawnConfig{Path: path, Args: args, Env: env, Names: names, MaxRestarts: restarts}
	if host, port, err := net.SplitHostPort(c.Metrics.Listen); err == nil {
		if p, err := strconv.Atoi(port); err == nil && p > 0 {
			// One metrics port each, consecutive: 9464, 9465, ...
			sc.ChildEnv = func(i int) []string {
				return []string{config.EnvName("metrics.listen") + "=" + net.JoinHostPort(host, strconv.Itoa(p+i))}
			}
		}
	}
	return sc, nil
}

// ConsumerNames are C-1, C-2, ... C-n.
func ConsumerNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = "C-" + strconv.Itoa(i+1)
	}
	return names
}
