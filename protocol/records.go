package protocol

import "time"

// Run states recorded in the runs bucket.
const (
	// RunOpen: the producer is still putting work.
	RunOpen = "open"
	// RunClosed: the producer has put all work and the sentinels.
	RunClosed = "closed"
)

// RunRecord is the value stored under a queue's name in the runs bucket. A
// consumer honours a sentinel only of the queue's current run, so a sentinel
// left over from an earlier run never stops a later run's consumer.
type RunRecord struct {
	Run       string    `json:"run"`
	State     string    `json:"state"`
	Sentinels int       `json:"sentinels"`
	Started   time.Time `json:"started"`
}

// Presence is the value of a consumer's key in ConsumersBucket, refreshed
// as a heartbeat: who is alive, and what it is doing.
type Presence struct {
	Name    string    `json:"name"`
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Queue   string    `json:"queue"`
	Run     string    `json:"run,omitempty"`
	Started time.Time `json:"started"`
	// Done is how many task messages it has run; LastMinute how many in
	// the last minute.
	Done       int64 `json:"done"`
	LastMinute int64 `json:"last_minute"`
	// InHand is how many task messages it holds (running or pulled ahead);
	// Task is the kind of the task it started last and still runs, since
	// Since.
	InHand int       `json:"in_hand"`
	Task   string    `json:"task,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	// Seen is when it wrote this, by its clock.
	Seen time.Time `json:"seen"`
}

// MapLease is the value of a running map's lease in RunsBucket, under
// "<queue>.map.<id>", refreshed every 2 s by its producer: what it would
// leave behind if it died, and how far it has got.
type MapLease struct {
	Subject string    `json:"subject"` // its tasks' subject
	Results string    `json:"results"` // its results' subject
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Kind    string    `json:"kind,omitempty"`
	Started time.Time `json:"started,omitzero"`
	// Submitted inputs so far, Done those with a result, Total all of
	// them (-1 until the producer has read its last input).
	Submitted int64 `json:"submitted"`
	Done      int64 `json:"done"`
	Total     int64 `json:"total"`
}
