package task

import "time"

// Run states recorded in the runs bucket.
const (
	// RunOpen: the producer is still putting work.
	RunOpen = "open"
	// RunClosed: the producer has put all work and the sentinels.
	RunClosed = "closed"
)

// KindMessage is the kind of a Queue demo message; its arguments are
// MessageArgs.
const KindMessage = "message"

// MessageArgs are the arguments of a Queue demo message.
type MessageArgs struct {
	Text string `json:"text"`
}

// RunRecord is the value stored under a queue's name in the runs bucket. A
// consumer honours a sentinel only of the queue's current run, so a sentinel
// left over from an earlier run never stops a later run's consumer.
type RunRecord struct {
	Run       string    `json:"run"`
	State     string    `json:"state"`
	Sentinels int       `json:"sentinels"`
	Started   time.Time `json:"started"`
}

// Presence is the value of a consumer's key in ConsumersBucket.
type Presence struct {
	Name    string    `json:"name"`
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Queue   string    `json:"queue"`
	Run     string    `json:"run,omitempty"`
	Started time.Time `json:"started"`
}
