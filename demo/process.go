package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// StartLine is the Process demo's line when a labelled task starts.
func StartLine(label string, pid int) string {
	return fmt.Sprintf("Process %s (PID: %d) starting...", label, pid)
}

// FinishLine is the Process demo's line when a labelled task ends: the
// first ten characters of the result, or the error.
func FinishLine(label string, result json.RawMessage, err error) string {
	if err != nil {
		return fmt.Sprintf("Process %s: Failed: %v", label, err)
	}
	s := string(result)
	var str string
	if json.Unmarshal(result, &str) == nil {
		s = str
	}
	if len(s) > 10 {
		s = s[:10] + "..."
	}
	return fmt.Sprintf("Process %s: Finished. Result (truncated): %s", label, strings.TrimSpace(s))
}

// Labelled prints the Process demo's start and finish lines to out for
// each labelled task a consumer runs (consumer.Config.Labelled).
func Labelled(out io.Writer) func(label string) func(json.RawMessage, error) {
	return func(label string) func(json.RawMessage, error) {
		fmt.Fprintln(out, StartLine(label, os.Getpid()))
		return func(res json.RawMessage, err error) { fmt.Fprintln(out, FinishLine(label, res, err)) }
	}
}
