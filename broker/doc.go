// Package broker runs the embedded NATS JetStream server, connects clients to
// it (or to any NATS server) and declares the JetStream topology procq uses.
package broker
