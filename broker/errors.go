package broker

import (
	"errors"
	"fmt"
)

var (
	// ErrNotReady is returned when the embedded server does not accept
	// connections in time (often: the port is in use).
	ErrNotReady = errors.New("broker did not become ready")
	// ErrNoJetStream is returned when the server runs without JetStream.
	ErrNoJetStream = errors.New("jetstream is not enabled")
)

// LockedError says that another process holds the store directory.
type LockedError struct {
	Dir string
	PID string // the holder's pid as written in the lock file, if known
}

func (e *LockedError) Error() string {
	if e.PID != "" {
		return fmt.Sprintf("store dir %s is in use by another broker (pid %s)", e.Dir, e.PID)
	}
	return fmt.Sprintf("store dir %s is in use by another broker", e.Dir)
}
