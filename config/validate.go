package config

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/procq/procq/producer"
	"github.com/procq/procq/task"
)

// validate checks every value that decoding alone cannot. Its errors are
// *Error with the key set; Load fills in the source.
func (c *Config) validate() error {
	checks := []struct {
		key string
		err error
	}{
		{"broker.url", checkURL(c.Broker.URL)},
		{"broker.store_dir", nonEmpty(c.Broker.StoreDir)},
		{"broker.connect_timeout", positive(c.Broker.ConnectTimeout)},
		{"queue.name", task.ValidName(c.Queue.Name)},
		{"queue.messages", atLeast(c.Queue.Messages, 0)},
		{"queue.pause_min", notNegative(c.Queue.PauseMin)},
		{"queue.pause_max", notBelow(c.Queue.PauseMax, c.Queue.PauseMin, "queue.pause_min")},
		{"queue.ack_wait", atLeastDur(c.Queue.AckWait, time.Second)},
		{"queue.max_deliver", atLeast(c.Queue.MaxDeliver, 1)},
		{"queue.max_ack_pending", atLeast(c.Queue.MaxAckPending, 1)},
		{"queue.max_messages", atLeast(int(c.Queue.MaxMessages), 1)},
		{"consumers.count", atLeast(c.Consumers.Count, 1)},
		{"consumers.work_min", notNegative(c.Consumers.WorkMin)},
		{"consumers.work_max", notBelow(c.Consumers.WorkMax, c.Consumers.WorkMin, "consumers.work_min")},
		{"consumers.concurrency", atLeast(c.Consumers.Concurrency, 1)},
		{"consumers.prefetch", atLeast(c.Consumers.Prefetch, 0)},
		{"consumers.max_restarts", atLeast(c.Consumers.MaxRestarts, 0)},
		{"pool.processes", atLeast(c.Pool.Processes, 0)},
		{"pool.kind", task.ValidName(c.Pool.Kind)},
		{"pool.inputs", parses(c.Pool.Inputs)},
		{"pool.chunk_size", atLeast(c.Pool.ChunkSize, 0)},
		{"pool.window", atLeast(c.Pool.Window, 1)},
		{"pool.sleep", notNegative(c.Pool.Sleep)},
		{"pool.results_max_age", atLeastDur(c.Pool.ResultsMaxAge, time.Second)},
		{"compare.n", inRange(c.Compare.N, 1, task.MaxSumSquaresN)},
		{"compare.tasks", atLeast(c.Compare.Tasks, 1)},
		{"pipe.name", task.ValidName(c.Pipe.Name)},
		{"pipe.peer_timeout", atLeastDur(c.Pipe.PeerTimeout, 100*time.Millisecond)},
		{"log.dir", nonEmpty(c.Log.Dir)},
		{"log.level", oneOf(c.Log.Level, "debug", "info", "warn", "error")},
		{"log.stderr_level", oneOf(c.Log.StderrLevel, "debug", "info", "warn", "error")},
	}
	for _, ch := range checks {
		if ch.err != nil {
			return &Error{Key: ch.key, Err: ch.err}
		}
	}
	return nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "nats" && u.Scheme != "tls" {
		return fmt.Errorf("%q: scheme must be nats:// or tls://", s)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%q: no host", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("%q: port must be 0 to 65535", s)
		}
	}
	return nil
}

func parses(inputs string) error {
	_, err := producer.ParseInputs(inputs)
	return err
}

func inRange(n, lo, hi int64) error {
	if n < lo || n > hi {
		return fmt.Errorf("must be in [%d, %d], got %d", lo, hi, n)
	}
	return nil
}

func nonEmpty(s string) error {
	if s == "" {
		return fmt.Errorf("must not be empty")
	}
	return nil
}

func atLeast(n, lo int) error {
	if n < lo {
		return fmt.Errorf("must be at least %d, got %d", lo, n)
	}
	return nil
}

func positive(d time.Duration) error { return atLeastDur(d, time.Nanosecond) }

func atLeastDur(d, lo time.Duration) error {
	if d < lo {
		return fmt.Errorf("must be at least %v, got %v", lo, d)
	}
	return nil
}

func notNegative(d time.Duration) error { return atLeastDur(d, 0) }

func notBelow(d, lo time.Duration, loKey string) error {
	if d < lo {
		return fmt.Errorf("must not be below %s (%v), got %v", loKey, lo, d)
	}
	return nil
}

func oneOf(s string, allowed ...string) error {
	for _, a := range allowed {
		if s == a {
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %v", s, allowed)
}
