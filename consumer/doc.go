// Package consumer is the worker side of a queue: it pulls tasks from the
// queue's shared durable consumer, runs them through a task.Registry, acks,
// publishes results, dead-letters what can never succeed, and stops on its
// sentinel.
package consumer
