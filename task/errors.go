package task

import "errors"

var (
	// ErrUnknownKind is returned for a task kind no handler is registered for.
	ErrUnknownKind = errors.New("unknown task kind")
	// ErrDuplicateKind is returned when a kind is registered twice.
	ErrDuplicateKind = errors.New("task kind already registered")
	// ErrBadArgs wraps arguments a handler cannot decode or accept.
	ErrBadArgs = errors.New("bad task arguments")
)

// PanicError is a handler panic turned into an error at the handler boundary.
type PanicError struct {
	Kind  string
	Value any
}

func (e *PanicError) Error() string {
	return "task " + e.Kind + " panicked: " + fmtAny(e.Value)
}
