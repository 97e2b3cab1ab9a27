// Package pipe is a duplex, ordered, durable channel between exactly two
// processes over JetStream, like Python's multiprocessing.Pipe across
// processes and machines.
//
// # Messages
//
// A pipe has two equal ends, A and B. Each end publishes on its own subject,
// procq.pipe.<name>.<end>, stored by the PROCQ_PIPES stream (file storage,
// limits retention), and reads its peer's subject from the first stored
// message with an ordered consumer. So messages arrive in the order sent, and
// a reader that opens late, even after the writer has closed, still gets
// everything. Close stores an end-of-file marker (an empty message with the
// header Procq-Pipe: eof); the peer's Recv returns io.EOF once it has read
// every earlier message. Send waits for the broker's acknowledgement by
// default, so a returned Send is stored; Config.SendWindow trades that for
// throughput.
//
// # Claims, leases and a dead peer
//
// Each end is claimed under the key <name>.<end> of the PROCQ_PIPE_ENDS
// key-value bucket. Open creates the key, which fails while another process
// holds it: a third process gets ErrEndInUse. The claim is a lease: a
// goroutine of the Conn renews it every third of PeerTimeout, and the broker
// deletes it by itself (a per-key TTL) when the holder dies, so the end can
// be opened again; the new holder goes on with the pipe where the dead one
// left it. A renewal that fails (no answer in time, a lost answer, a broker
// error) is retried every twelfth of PeerTimeout for as long as it fails; a
// write of the holder's own that got there first is recognised by the
// holder's id in the claim. Only the broker saying that the claim is gone or
// another holder's ends the lease: then Send, Recv and Close fail with
// ErrLeaseLost.
//
// The renewals are also the heartbeat the peer watches. When Recv has had no
// message for a while, it asks the broker for its time (the timestamp of a
// stream info answer) and then reads the peer's claim: a claim whose latest
// revision the broker stored PeerTimeout or longer ago, or that has expired,
// means the peer is gone. Only the broker's clock is read, never a local
// one, so clock skew between machines does not matter. Recv then fails with
// ErrPeerGone, but only once everything the peer sent was read, and only for
// a peer that was seen (a reader whose peer has not opened yet waits for it).
//
// # Cleanup
//
// Close marks the claim closed. The end that closes second (or closes after
// its peer was found gone) removes the pipe: its messages, both claims, and
// its consumer. Before that, the reader purges what it has read every 256
// messages. Opening an end that an earlier holder closed starts the pipe
// afresh (what that earlier pipe left unread is discarded), unless the peer
// is still reading it, which is ErrEndInUse. What a pipe whose ends both died
// leaves behind goes after 24 hours (the stream's and bucket's max age).
package pipe
