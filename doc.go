// Package procq is Python's multiprocessing (Pool, Queue, Pipe, Process)
// as separate OS processes that exchange work through NATS JetStream. It
// is the one front door: the producer, consumer and broker executables
// are built on it, and so is a Go program of yours.
//
// # Connect
//
// Connect reaches the broker with the configuration the executables use
// (config.yaml, PROCQ_<SECTION>_<KEY> variables), or with yours:
//
//	c, err := procq.Connect(ctx)                            // config.yaml, PROCQ_*
//	c, err := procq.Connect(ctx, procq.WithConfig(cfg))     // a *config.Config of yours
//	c, err := procq.Connect(ctx, procq.WithConn(nc))        // a *nats.Conn of yours
//	defer c.Close()
//
// A bad configuration value is a *config.Error naming the key.
//
// # Pool: map a kind over inputs
//
// A Pool maps a task kind over inputs across consumer processes and gives
// the results back in input order, like Pool.map; a failed input gets an
// error of its own and the map goes on:
//
//	pool, err := c.Pool(ctx, procq.Processes(4)) // four bin/consumer processes
//	squares, err := procq.Map[demo.SquareArgs, int64](ctx, pool, demo.KindSquare, args)
//	var me *procq.MapError                        // some inputs failed: which, and why
//	err = pool.Close(ctx)                         // sentinels, then join the processes
//
// Imap and ImapUnordered stream results while the map runs, Starmap
// spreads argument lists, Apply and ApplyAsync run one task, MapAsync
// calls back once. Without Processes a pool uses the consumers of the
// queue that run already (started by hand, or a Worker); Consumers(n)
// makes it a run whose n consumers, started by hand, each get a sentinel
// at Close. A killed consumer never hangs a map: its task is delivered
// again, and a spawned one is replaced.
//
// # Worker: serve kinds in this process
//
// A Worker is the consumer side in your own process, with the same
// configuration, presence and metrics as bin/consumer:
//
//	reg := task.NewRegistry()
//	task.MustRegister(reg, "double", func(ctx context.Context, x int) (int, error) { return 2 * x, nil })
//	w, err := c.Worker(reg, procq.Initializer(openDatabase))
//	err = w.Run(ctx) // until its sentinel, or ctx ends
//
// To build a consumer executable with kinds of your own instead, see
// package cmd/consumer/app (app.Main(reg)).
//
// # Queue, Pipe, Process
//
// Client.Queue opens a message queue (multiprocessing.Queue: any JSON
// value, each to one getter, first in first out, with Put and Get here);
// Client.Pipe opens one end of a two-way pipe between two processes,
// whose Close gives the other end io.EOF; Client.Process starts one
// consumer executable, like multiprocessing.Process.
//
// # Where the rest lives
//
// Package task is the handler API; package protocol names every stream,
// subject, header and record, and holds the run, sentinel and
// child-process rules (docs/guarantees.md); packages producer and
// consumer are the two sides, and never import each other.
package procq
