package config

import "fmt"

// Error is a bad configuration value. It names the key and where the value
// came from (the config file, an environment variable or a flag); commands
// exit with code 2 on it.
type Error struct {
	// Source is the config file path, "environment PROCQ_..." or "flag --...".
	Source string
	// Key is the dotted key, e.g. consumers.count; empty for a file that
	// cannot be read or parsed at all.
	Key string
	Err error
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("config %s: %v", e.Source, e.Err)
	}
	return fmt.Sprintf("config %s: %s: %v", e.Source, e.Key, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }
