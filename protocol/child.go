package protocol

import (
	"strings"
	"syscall"
)

// The child-process protocol: how a producer starts a consumer process
// and how the two talk while it runs. Both sides use these names (the
// producer in package producer, the consumer in cmd/consumer/app); the
// first column is what docs/guarantees.md tests row by row.
//
//	| what      | rule                                                          |
//	|-----------|---------------------------------------------------------------|
//	| argv      | [--config FILE] [subcommand and flags] --name C-n             |
//	|           | [--run RUN] [--holds-fd 3]: the name, the run it serves, and  |
//	|           | the descriptor it reports on                                  |
//	| env       | the producer's PROCQ_* values, with broker.url and the token  |
//	|           | it reached the broker with, queue.name, and one metrics port  |
//	|           | per child (metrics.listen + i)                                |
//	| fd 3      | one line per change: "+<ack subject>" when the child takes a  |
//	|           | message, "-<ack subject>" when it settles it; at the child's  |
//	|           | death the producer hands back (-NAK) what is left at once     |
//	| exit 0    | took its sentinel, or stopped when told: done                 |
//	| exit 1    | failed: replaced, up to consumers.max_restarts                |
//	| exit 2    | bad usage or configuration: not replaced (no restart helps)   |
//	| exit 3    | retired after consumers.max_tasks: replaced by a fresh one,   |
//	|           | no restart counted                                            |
//	| SIGTERM   | the producer's stop: finish the task in hand, hand back the   |
//	|           | rest, exit 0; killed after the stop grace                     |
//	| SIGHUP    | the producer died (Linux asks the kernel for it); the child   |
//	|           | also watches its parent pid: an orphan stops, hands back what |
//	|           | it holds and exits 1                                          |
const (
	ArgConfig  = "--config"
	ArgName    = "--name"
	ArgRun     = "--run"
	ArgHoldsFD = "--holds-fd"
	// HoldsFD is the child's descriptor of its holds pipe: the first of
	// os/exec's ExtraFiles.
	HoldsFD = 3
)

// Exit codes of every procq executable; a spawning producer reads a
// consumer's as the table says.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
	ExitRetired = 3
	// ExitTimeLimit: a consumer abandoned a handler at its hard time
	// limit and exited to stop it; its producer starts a fresh one.
	ExitTimeLimit = 4
)

// StopSignal is how a producer tells its children to stop; OrphanSignal
// is what the kernel sends a child when its producer dies.
const (
	StopSignal   = syscall.SIGTERM
	OrphanSignal = syscall.SIGHUP
)

// Hold is one line of the holds pipe: the child took (Taken) or settled
// the message whose ack subject is Subject.
type Hold struct {
	Taken   bool
	Subject string
}

// AppendHold appends h's line, newline included, to dst.
func AppendHold(dst []byte, h Hold) []byte {
	op := byte('-')
	if h.Taken {
		op = '+'
	}
	dst = append(dst, op)
	dst = append(dst, h.Subject...)
	return append(dst, '\n')
}

// ParseHold reads one line of the holds pipe, without its newline; ok is
// false for anything else.
func ParseHold(line string) (h Hold, ok bool) {
	if len(line) < 2 || strings.ContainsAny(line, "\n\r") {
		return Hold{}, false
	}
	switch line[0] {
	case '+':
		return Hold{Taken: true, Subject: line[1:]}, true
	case '-':
		return Hold{Subject: line[1:]}, true
	}
	return Hold{}, false
}
