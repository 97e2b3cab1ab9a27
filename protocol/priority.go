package protocol

import (
	"errors"
	"fmt"
	"strings"
)

// Priorities. JetStream delivers a consumer's messages in stream order and
// has no priority per message, so each level of a queue has subjects and a
// durable consumer of its own, and a consumer process pulls the levels in
// order: a higher level's task is taken first whenever one is waiting.
//
//	level    subjects                                   durable
//	high     procq.tasks.<queue>.high.<run>[.<map>]     procq-high_<queue>
//	default  procq.tasks.<queue>.work.<run>[.<map>],    procq_<queue>
//	         procq.tasks.<queue>.sentinel
//	low      procq.tasks.<queue>.low.<run>[.<map>]      procq-low_<queue>
//
// The default level keeps the subjects and the durable a queue always had,
// so work put by a client that knows nothing of priorities runs as before.
// The durables' filters do not overlap, as a WorkQueue stream requires.

// Priority is a task's level: PriorityHigh, PriorityDefault or
// PriorityLow. The zero value is PriorityDefault.
type Priority string

// The levels, highest first.
const (
	PriorityHigh    Priority = "high"
	PriorityDefault Priority = "default"
	PriorityLow     Priority = "low"
)

// Priorities are the levels, highest first: the order a consumer takes
// them in.
func Priorities() []Priority { return []Priority{PriorityHigh, PriorityDefault, PriorityLow} }

// ErrUnknownPriority says a priority is none of high, default and low.
var ErrUnknownPriority = errors.New("unknown priority: want high, default or low")

// ParsePriority reads a level by its name (any case); "" is the default.
func ParsePriority(s string) (Priority, error) {
	p := Priority(strings.ToLower(strings.TrimSpace(s)))
	if p == "" {
		return PriorityDefault, nil
	}
	if err := p.Validate(); err != nil {
		return "", fmt.Errorf("%q: %w", s, ErrUnknownPriority)
	}
	return p, nil
}

// Validate fails, naming p, unless p is a level (or the zero value).
func (p Priority) Validate() error {
	switch p {
	case "", PriorityHigh, PriorityDefault, PriorityLow:
		return nil
	}
	return fmt.Errorf("%q: %w", string(p), ErrUnknownPriority)
}

// Norm is p with the zero value spelled out: PriorityDefault.
func (p Priority) Norm() Priority {
	if p == "" {
		return PriorityDefault
	}
	return p
}

// Zero is p with the default level spelled as the zero value, as
// TaskOptions keeps it.
func (p Priority) Zero() Priority {
	if p == PriorityDefault {
		return ""
	}
	return p
}

// Rank orders the levels: 0 for the highest; the default level's is
// DefaultRank.
func (p Priority) Rank() int {
	switch p {
	case PriorityHigh:
		return 0
	case PriorityLow:
		return 2
	}
	return DefaultRank
}

// DefaultRank is the default level's Rank; NumPriorities the number of
// levels.
const (
	DefaultRank   = 1
	NumPriorities = 3
)

// levelToken is the subject token of a level's work, after the queue's.
func (p Priority) levelToken() string {
	switch p {
	case PriorityHigh, PriorityLow:
		return string(p)
	}
	return "work"
}

// LevelSubject is the subject of a queue's work of one run (or one pool
// map: run.map) at level p: WorkSubject for the default level.
func LevelSubject(queue, run string, p Priority) string {
	return TasksPrefix + "." + queue + "." + p.levelToken() + "." + run
}

// LevelFilters are the subjects the durable of a queue's level p takes:
// its work, and for the default level the sentinels as well.
func LevelFilters(queue string, p Priority) []string {
	f := []string{TasksPrefix + "." + queue + "." + p.levelToken() + ".>"}
	if p.Norm() == PriorityDefault {
		f = append(f, SentinelSubject(queue))
	}
	return f
}

// LevelDurable is the durable consumer of a queue's level p, shared by all
// the queue's consumers: DurableName for the default level. The other
// levels' names begin "procq-", which no default durable does (a queue's
// name cannot make "procq_<queue>" one of them).
func LevelDurable(queue string, p Priority) string {
	if p.Norm() == PriorityDefault {
		return DurableName(queue)
	}
	return "procq-" + string(p) + "_" + queue
}

// ParseDurable returns the queue and level of a durable named by
// LevelDurable; ok is false for any other name.
func ParseDurable(name string) (queue string, p Priority, ok bool) {
	if q, found := strings.CutPrefix(name, "procq_"); found && q != "" {
		return q, PriorityDefault, true
	}
	for _, l := range []Priority{PriorityHigh, PriorityLow} {
		if q, found := strings.CutPrefix(name, "procq-"+string(l)+"_"); found && q != "" {
			return q, l, true
		}
	}
	return "", "", false
}

// IsWorkSubject reports whether subject is a work subject of queue, at
// any level: procq.tasks.<queue>.(work|high|low).<run>....
func IsWorkSubject(queue, subject string) bool {
	for _, p := range Priorities() {
		if strings.HasPrefix(subject, TasksPrefix+"."+queue+"."+p.levelToken()+".") {
			return true
		}
	}
	return false
}

// RunFilters match the work of a run (its own subjects, and its maps')
// at every level.
func RunFilters(queue, run string) []string {
	own := TasksPrefix + "." + queue + ".*." + run
	return []string{own, own + ".>"}
}
