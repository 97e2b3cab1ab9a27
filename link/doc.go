// Package link is how a procq process reaches the broker: connecting with
// retries and the token, and declaring the JetStream streams, consumer and
// key-value buckets a queue needs. It works with any NATS server (embedded,
// stock, or a cluster) and never imports the server: producers, consumers
// and pipes depend on this package, and only the broker executable and the
// embedded fallback on package broker.
package link
