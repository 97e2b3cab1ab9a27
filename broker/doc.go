// Package broker runs the embedded NATS JetStream server: its store lock,
// its token, and (when configured) its place in a cluster. Clients reach
// it, or any NATS server, through package link.
package broker
