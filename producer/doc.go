// Package producer is the submitting side of a queue.
//
// A TaskQueue puts tasks and sentinels on one queue's subjects, waiting for
// room when the queue is full (it pushes back; it never drops queued
// work), and removes what the maps of dead producers left (Reap).
//
// A Run is one run of the queue, the producer's half of the run protocol
// (the table on Run): Begin records it as the queue's current run, and
// Do enacts the rest in order: Spawn starts the consumer processes
// (SpawnConfig, Group: each child is told its run and reports what it
// holds on fd 3, so a dead child's messages go back at once), Watch
// fails the work once no consumer is left, End puts one sentinel per
// consumer, and Join waits for the children.
//
//	r, err := producer.Begin(ctx, q, producer.RunConfig{Consumers: 2, Spawn: sc})
//	err = r.Do(ctx, func(ctx context.Context) error {
//		pool := producer.NewPool(q, producer.PoolConfig{Run: r})
//		_, err := pool.Map(ctx, "square", args)
//		return err
//	})
//
// A Pool maps a kind over inputs in chunks with a bounded window of task
// messages in flight, reads the answers from the results stream in
// input order (Map, Imap) or as they come (ImapUnordered), and runs
// single tasks over one long-lived map per kind (Apply, ApplyAsync). Each
// map holds a lease in the runs bucket with its progress.
//
// Package procq is the front door over all of this; producer never
// imports the consumer side.
package producer
