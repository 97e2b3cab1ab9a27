package pipe

import "errors"

var (
	// ErrEndInUse is returned by Open when another process holds the end
	// (or closed it while its peer still reads what it sent).
	ErrEndInUse = errors.New("pipe end in use")
	// ErrPeerGone is returned by Recv when the peer stopped renewing its
	// claim without closing its end (it was killed, or lost its broker
	// link), once everything it sent has been read.
	ErrPeerGone = errors.New("pipe peer gone")
	// ErrLeaseLost is returned by Send, Recv and Close when the broker
	// says this end's claim is gone (no renewal reached it before the
	// claim expired, or it was removed) or held by another process: the
	// end is no longer this process's.
	ErrLeaseLost = errors.New("pipe end lease lost")
	// ErrClosed is returned by Send, Flush and Recv on an end that was
	// closed.
	ErrClosed = errors.New("pipe end closed")
)
