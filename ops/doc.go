// Package ops is procq's operations side, read from JetStream: the status
// snapshot that "broker status" prints and the dashboard shows, the
// dead-letter tools, and the broker's queue and stream metrics. The
// dashboard itself is package ops/dashboard.
package ops
