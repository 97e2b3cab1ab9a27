package task

import (
	"fmt"
	"regexp"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidName reports whether s can name a task kind, a queue, a consumer or a pipe: one to 64
// letters, digits, '-' or '_', so it is a single subject token and a valid
// stream, consumer and key name.
func ValidName(s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%q is not a valid name: use 1 to 64 letters, digits, '-' or '_'", s)
	}
	return nil
}
