package consumer

import "errors"

// ErrBrokerLost is returned by Run when the connection to the broker is
// closed for good (the broker was unreachable for longer than the client's
// reconnect budget).
var ErrBrokerLost = errors.New("broker connection lost")
