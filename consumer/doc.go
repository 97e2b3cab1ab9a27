// Package consumer is the worker side of a queue.
//
// A Worker pulls task messages from the queue's one shared durable
// consumer (so each message goes to exactly one worker), holding at most
// what its adaptive prefetch window allows; keeps the lease of every
// message it holds alive with heartbeats; runs each through a
// task.Registry, a chunk in one call for typed handlers; retries an input
// that asks for it (task.Retry) with backoff; stores the answers on the
// map's results subject and acks only once they are stored; dead-letters
// what can never succeed, with the reason; and stops on its sentinel,
// judged by protocol.JudgeSentinel so that sentinels never strand work.
//
//	w, err := consumer.New(consumer.Config{Name: "C-1"}, js, topo, reg, logger)
//	err = w.Run(ctx) // until its sentinel, or ctx ends: then it finishes what it holds
//
// While it runs it keeps a presence key (protocol.Presence) that says
// what it does, tells Events of every task (WorkerMetrics turns them into
// Prometheus metrics), and, when spawned, reports what it holds on the
// holds pipe (protocol.Hold).
//
// Package procq's Client.Worker is the front door over it; consumer never
// imports the producer side.
package consumer
