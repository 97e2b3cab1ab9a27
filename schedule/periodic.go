package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/robfig/cron/v3"

	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// Spec is a periodic schedule: every firing puts one task of Kind with
// Args on Queue, an ordinary task of that queue (retries, dead letters and
// metrics apply).
type Spec struct {
	Name  string          `json:"name"`
	Queue string          `json:"queue"`
	Kind  string          `json:"kind"`
	Args  json.RawMessage `json:"args"`
	// Cron is a six-field cron expression (seconds first: "0 */5 * * * *")
	// or @hourly, @daily, @weekly, @monthly, @yearly; or Every is an
	// interval of at least a second. One of the two.
	Cron  string        `json:"cron,omitempty"`
	Every time.Duration `json:"every,omitempty"`
	// TZ is the IANA time zone Cron is read in (e.g. Europe/Berlin);
	// empty is UTC. Only with Cron.
	TZ string `json:"tz,omitempty"`
}

// ErrBadSpec says a schedule's spec is invalid; the message names the
// field.
var ErrBadSpec = errors.New("bad schedule")

// ErrExists and ErrNotFound say a schedule of that name exists, or does
// not.
var (
	ErrExists   = errors.New("a schedule of that name exists; remove it first")
	ErrNotFound = errors.New("no schedule of that name")
)

// JetStream's error codes of a schedule it refuses.
const (
	errCodePatternInvalid jetstream.ErrorCode = 10189
	errCodeZoneInvalid    jetstream.ErrorCode = 10223
)

// MinEvery is the shortest interval the broker fires at.
const MinEvery = time.Second

var cronParser = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Validate checks s, naming the field that is wrong.
func (s Spec) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadSpec, fmt.Sprintf(format, a...))
	}
	if err := task.ValidName(s.Name); err != nil {
		return bad("name: %v", err)
	}
	if err := task.ValidName(s.Queue); err != nil {
		return bad("queue: %v", err)
	}
	if s.Kind == "" {
		return bad("kind is required")
	}
	if len(s.Args) > 0 && !task.Valid(s.Args) {
		return bad("args: not a JSON value: %.100q", s.Args)
	}
	switch {
	case s.Cron != "" && s.Every != 0:
		return bad("give a cron expression or an interval, not both")
	case s.Cron == "" && s.Every == 0:
		return bad("give a cron expression (--cron) or an interval (--every)")
	case s.Every != 0 && s.Every < MinEvery:
		return bad("every: %v is under the broker's shortest interval, %v", s.Every, MinEvery)
	case s.Every != 0 && s.TZ != "":
		return bad("tz: a time zone applies to a cron expression only")
	}
	if s.TZ != "" {
		if _, err := time.LoadLocation(s.TZ); err != nil {
			return bad("tz: unknown time zone %q", s.TZ)
		}
	}
	if s.Cron != "" {
		if strings.HasPrefix(s.Cron, "@every") {
			return bad("cron: use an interval (--every) instead of %q", s.Cron)
		}
		if strings.HasPrefix(s.Cron, "TZ=") || strings.HasPrefix(s.Cron, "CRON_TZ=") {
			return bad("cron: %q: give the time zone with --tz, not in the expression", s.Cron)
		}
		sched, err := cronParser.Parse(s.Cron)
		if err != nil {
			return bad("cron: %q: %v (six fields, seconds first: \"0 */5 * * * *\")", s.Cron, err)
		}
		if sched.Next(time.Now()).IsZero() {
			return bad("cron: %q never fires (no such date within five years)", s.Cron)
		}
	}
	return nil
}

// pattern is the Nats-Schedule header of s.
func (s Spec) pattern() string {
	if s.Every != 0 {
		return "@every " + s.Every.String()
	}
	return s.Cron
}

// Next is when s fires next after now, for a schedule created at
// created.
func (s Spec) Next(created, now time.Time) time.Time {
	if s.Every > 0 {
		first := created.UTC().Round(time.Second).Add(s.Every)
		if now.Before(first) {
			return first
		}
		n := now.Sub(first)/s.Every + 1
		return first.Add(n * s.Every)
	}
	sched, err := cronParser.Parse(s.Cron)
	if err != nil {
		return time.Time{}
	}
	loc := time.UTC
	if s.TZ != "" {
		if l, err := time.LoadLocation(s.TZ); err == nil {
			loc = l
		}
	}
	return sched.Next(now.In(loc)).UTC()
}

// Add creates the periodic schedule s; ErrExists when one of its name
// exists. The queue's topology must exist (the firing is sourced into
// its stream): procq.Client.Schedule declares it.
func Add(ctx context.Context, js jetstream.JetStream, s Spec) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if err := Supported(js); err != nil {
		return err
	}
	args := s.Args
	if len(args) == 0 {
		args = json.RawMessage("null")
	}
	msg := &nats.Msg{Subject: protocol.PeriodicSubject(s.Name), Data: args, Header: nats.Header{}}
	msg.Header.Set(protocol.HeaderSchedulePattern, s.pattern())
	if s.TZ != "" {
		msg.Header.Set(protocol.HeaderScheduleTimeZone, s.TZ)
	}
	msg.Header.Set(protocol.HeaderScheduleTarget, protocol.FireSubject(protocol.PeriodicTarget(s.Queue, s.Name)))
	msg.Header.Set(protocol.HeaderKind, s.Kind)
	msg.Header.Set(protocol.HeaderSchedule, s.Name)
	msg.Header.Set(protocol.HeaderTaskID, s.Name)
	msg.Header.Set(protocol.HeaderExpectedLastSubjSeq, "0") // never replace one
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			return fmt.Errorf("schedule %s: %w", s.Name, ErrExists)
		}
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == errCodePatternInvalid || apiErr.ErrorCode == errCodeZoneInvalid) {
			return fmt.Errorf("%w: the broker refused it: %s", ErrBadSpec, apiErr.Description)
		}
		return fmt.Errorf("schedule %s: %w", s.Name, err)
	}
	return nil
}

// Entry is a periodic schedule as stored, with its next firing.
type Entry struct {
	Spec
	Created time.Time `json:"created"`
	Next    time.Time `json:"next"`
}

// MaxSchedules bounds what List returns.
const MaxSchedules = 10_000

// List returns every periodic schedule, oldest first, with its next
// firing after now.
func List(ctx context.Context, js jetstream.JetStream, now time.Time) ([]Entry, error) {
	s, err := js.Stream(ctx, protocol.SchedStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Entry
	err = scan(ctx, js, s, protocol.PeriodicFilter, MaxSchedules, func(m *jetstream.RawStreamMsg) {
		out = append(out, entry(m, now))
	})
	return out, err
}

func entry(m *jetstream.RawStreamMsg, now time.Time) Entry {
	e := Entry{Created: m.Time.UTC()}
	e.Name = strings.TrimPrefix(m.Subject, protocol.SchedPrefix+".cron.") // the subject is the schedule's, whatever its headers say
	e.Kind = m.Header.Get(protocol.HeaderKind)
	e.Args = json.RawMessage(m.Data)
	e.Queue = QueueOf(strings.Replace(m.Header.Get(protocol.HeaderScheduleTarget), protocol.SchedPrefix+".fire.", "procq.", 1))
	e.TZ = m.Header.Get(protocol.HeaderScheduleTimeZone)
	if p := m.Header.Get(protocol.HeaderSchedulePattern); strings.HasPrefix(p, "@every ") {
		e.Every, _ = time.ParseDuration(strings.TrimPrefix(p, "@every "))
	} else {
		e.Cron = p
	}
	e.Next = e.Spec.Next(e.Created, now)
	return e
}

// Get returns the named schedule.
func Get(ctx context.Context, js jetstream.JetStream, name string, now time.Time) (Entry, error) {
	if err := task.ValidName(name); err != nil {
		return Entry{}, fmt.Errorf("%w: name: %v", ErrBadSpec, err)
	}
	s, err := js.Stream(ctx, protocol.SchedStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return Entry{}, fmt.Errorf("schedule %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Entry{}, err
	}
	m, err := s.GetLastMsgForSubject(ctx, protocol.PeriodicSubject(name))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Entry{}, fmt.Errorf("schedule %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Entry{}, err
	}
	return entry(m, now), nil
}

// Remove deletes the named schedule: it fires no more. Its firings
// already in the queue still run.
func Remove(ctx context.Context, js jetstream.JetStream, name string) error {
	if _, err := Get(ctx, js, name, time.Now()); err != nil {
		return err
	}
	s, err := js.Stream(ctx, protocol.SchedStream)
	if err != nil {
		return err
	}
	return s.Purge(ctx, jetstream.WithPurgeSubject(protocol.PeriodicSubject(name)))
}

// RunNow fires the named schedule once now, besides its own times: the
// task takes the same path as a firing. It returns the task's id.
func RunNow(ctx context.Context, js jetstream.JetStream, name string) (string, error) {
	e, err := Get(ctx, js, name, time.Now())
	if err != nil {
		return "", err
	}
	id := name + ".run-" + nuid.Next()
	msg := &nats.Msg{Subject: protocol.FireSubject(protocol.PeriodicTarget(e.Queue, name)), Data: e.Args, Header: nats.Header{}}
	msg.Header.Set(protocol.HeaderKind, e.Kind)
	msg.Header.Set(protocol.HeaderSchedule, name)
	msg.Header.Set(protocol.HeaderTaskID, id)
	msg.Header.Set(protocol.HeaderDue, time.Now().UTC().Format(time.RFC3339Nano))
	msg.Header.Set(protocol.HeaderMsgID, id)
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return "", fmt.Errorf("schedule %s: run: %w", name, err)
	}
	return id, nil
}
