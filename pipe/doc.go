// Package pipe is a duplex, ordered, durable channel between exactly two
// processes over JetStream, like Python's multiprocessing.Pipe across
// machines.
//
// A pipe has two ends, A and B. Each end publishes on its own subject,
// procq.pipe.<name>.<end>, stored by the PROCQ_PIPES stream, and reads its
// peer's subject from the start with an ordered consumer, so messages arrive
// in the order sent, and a reader that opens late (even after the writer has
// closed) still gets everything. Close publishes an end-of-file marker; the
// peer's Recv returns io.EOF once it has read every earlier message.
//
// Each end is claimed in the PROCQ_PIPE_ENDS key-value bucket: Open creates
// the key <name>.<end>, so a third process opening an end already held gets
// ErrEndInUse. The holder refreshes its claim every third of PeerTimeout;
// the refresh doubles as the heartbeat the peer watches. A claim not
// refreshed for PeerTimeout is stale: a new process may take the end over,
// and the peer's Recv, once it has read everything, fails with ErrPeerGone
// instead of waiting forever for a process that was killed.
//
// Close ends both directions, as Connection.close does in Python. When both
// ends have closed, the pipe's messages and claims are removed;
// while it is open, the reader purges what it has read every 256 messages.
package pipe
