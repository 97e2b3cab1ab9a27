package natstest

import "go.uber.org/goleak"

// LeakOptions are the goroutines goleak may find after every test server
// was shut down: nats-server's own, which end by themselves. A stream
// that sources another (the task stream sources PROCQ_SCHED) leaves its
// source-consumer setup waiting out its timeout after a shutdown.
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*stream).trySetupSourceConsumer.func3"),
	}
}
