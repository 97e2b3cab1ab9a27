package pipe

import "errors"

var (
	// ErrEndInUse is returned by Open when another live process holds the end.
	ErrEndInUse = errors.New("pipe end in use")
	// ErrPeerGone is returned by Recv when the peer stopped showing signs of
	// life without closing its end (it was killed, or lost its broker link).
	ErrPeerGone = errors.New("pipe peer gone")
	// ErrClosed is returned by Send and Recv on an end that was closed.
	ErrClosed = errors.New("pipe end closed")
)
