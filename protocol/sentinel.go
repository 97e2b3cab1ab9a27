package protocol

// SentinelCase is what a consumer knows when a message arrives on its
// queue's sentinel subject.
type SentinelCase struct {
	// IsSentinel: the message has Procq-Sentinel: 1 and a Procq-Run.
	IsSentinel bool
	// Run is the sentinel's run.
	Run string
	// Current is the queue's current run in PROCQ_RUNS; empty if none.
	Current string
	// Bound is the run the consumer was started for (a spawned consumer is
	// told it); empty for a consumer started by hand.
	Bound string
	// Skip is, for a consumer started by hand, the run that was already
	// over (closed, no work left) when it started; empty otherwise.
	Skip string
	// Took: the consumer already took a sentinel.
	Took bool
	// Unfinished counts the work of Run still in the queue: queued, held
	// by a consumer, or waiting for redelivery.
	Unfinished uint64
	// Delayed counts Run's delayed tasks that have not fired (or whose
	// firing is not in the queue yet).
	Delayed uint64
}

// SentinelVerdict is what a consumer does with a message on the sentinel
// subject.
type SentinelVerdict int

const (
	// SentinelTake: acknowledge it (confirmed) and exit 0.
	SentinelTake SentinelVerdict = iota
	// SentinelDrop: a stale sentinel; acknowledge it and go on.
	SentinelDrop
	// SentinelPass: another consumer's sentinel; hand it back after a short
	// delay and go on.
	SentinelPass
	// SentinelWait: its run still has unfinished work; hand it back after a
	// short delay and go on working, so that work is finished first.
	SentinelWait
	// SentinelReject: not a sentinel; dead-letter it and go on.
	SentinelReject
)

func (v SentinelVerdict) String() string {
	switch v {
	case SentinelTake:
		return "take"
	case SentinelDrop:
		return "drop"
	case SentinelPass:
		return "pass"
	case SentinelWait:
		return "wait"
	case SentinelReject:
		return "reject"
	}
	return "unknown"
}

// JudgeSentinel is the consumer's side of the run protocol (see
// producer.Run for the producer's). The first row that matches decides:
//
//	| case                                                   | verdict |
//	|--------------------------------------------------------|---------|
//	| no Procq-Sentinel: 1 header, or no Procq-Run           | reject  |
//	| the consumer already took a sentinel                   | pass    |
//	| Run is not the queue's current run                     | drop    |
//	| spawned for another run (Bound set, Bound != Run)      | pass    |
//	| by hand, and Run was over when the consumer started    | drop    |
//	| Run still has unfinished work                          | wait    |
//	| Run has delayed tasks not fired yet                    | wait    |
//	| otherwise                                              | take    |
//
// A spawned consumer is told its run, so it never takes its own run for an
// old one, however late it starts (a replacement started after the
// sentinels were put takes one of them). A consumer started by hand cannot
// know whether a closed run's leftover sentinel is meant for it, so it
// drops the sentinels of a run that was already over when it started.
func JudgeSentinel(c SentinelCase) SentinelVerdict {
	switch {
	case !c.IsSentinel || c.Run == "":
		return SentinelReject
	case c.Took:
		return SentinelPass
	case c.Run != c.Current:
		return SentinelDrop
	case c.Bound != "" && c.Bound != c.Run:
		return SentinelPass
	case c.Bound == "" && c.Run == c.Skip:
		return SentinelDrop
	case c.Unfinished > 0, c.Delayed > 0:
		return SentinelWait
	}
	return SentinelTake
}
