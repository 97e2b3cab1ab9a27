package procq

import (
	"context"
	"fmt"
	"time"

	"github.com/procq/procq/msgq"
	"github.com/procq/procq/ops"
	"github.com/procq/procq/producer"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/schedule"
	"github.com/procq/procq/task"
)

// Tasks in time. A task or item put with In or At is a delayed task: the
// broker holds it (a JetStream message schedule) and delivers it when
// due, so nothing of procq has to run meanwhile but the broker; its
// handle can Cancel it until then. A periodic schedule (Client.Schedule)
// fires a task by cron or at an interval, every firing an ordinary task
// of its queue.

// Errors of tasks in time.
var (
	// ErrCancelled is the result of a cancelled task (errors.Is).
	ErrCancelled = producer.ErrCancelled
	// ErrFired: Cancel came too late, the task fired already (or was
	// cancelled before).
	ErrFired = schedule.ErrFired
	// ErrNotDelayed: Cancel of a task that was queued at once.
	ErrNotDelayed = producer.ErrNotDelayed
	// ErrDeadline: the task was taken after its deadline and never ran
	// (errors.Is on a map's or a task's error).
	ErrDeadline = producer.ErrDeadline
	// ErrFinished: Cancel of a task that has its result already.
	ErrFinished = producer.ErrFinished
	// ErrNoSuchTask: Cancel of a task id no running map or delayed task
	// has.
	ErrNoSuchTask = producer.ErrNoTask
)

// TaskOption sets what one task or item asks for: when it is delivered
// (In, At), by when it must start (Deadline), whether another like it may
// be queued meanwhile (Unique).
type TaskOption func(*protocol.TaskOptions)

// In delays a task or item by d: the broker delivers it d from now.
func In(d time.Duration) TaskOption {
	return func(o *protocol.TaskOptions) { o.At = time.Now().Add(d) }
}

// At delays a task or item until t; a t in the past delivers it at once.
func At(t time.Time) TaskOption { return func(o *protocol.TaskOptions) { o.At = t } }

// Deadline gives a task a deadline: a consumer that takes it later does
// not run it; its result is an error errors.Is ErrDeadline and it is
// dead-lettered with the reason "deadline passed". For every task of a
// pool's maps, see MapDeadline.
func Deadline(t time.Time) TaskOption { return func(o *protocol.TaskOptions) { o.Deadline = t } }

// Timeout gives a task a time limit of its own, above consumers.task_timeout:
// its handler's context is cancelled at d; a handler still running
// consumers.hard_timeout_grace later is abandoned, its input fails with
// "time limit exceeded after <d>", it is dead-lettered, and its consumer
// process exits (code 4) so that a fresh one replaces it. d must be
// positive.
func Timeout(d time.Duration) TaskOption {
	return func(o *protocol.TaskOptions) {
		o.Timeout = d
		if d <= 0 || d > protocol.MaxTimeout {
			o.Err = fmt.Errorf("procq.Timeout: a time limit must be positive and at most %v, got %v", protocol.MaxTimeout, d)
		}
	}
}

func taskOpts(opts []TaskOption) protocol.TaskOptions {
	var o protocol.TaskOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Task is the handle of a task or item put with Submit or Put.
type Task struct {
	d      *schedule.Delayed
	id     string // a task's (Submit) id in its run
	cancel func(context.Context) error
}

// ID is the task's id (its Procq-Task-Id): a delayed task's or item's
// own or a unique item's, a task's (Submit) "<run>.<index>"; "" for an
// item put at once and not unique.
func (t *Task) ID() string {
	if t.d != nil {
		return t.d.ID
	}
	return t.id
}

// Due is when a delayed task fires; zero when it was not delayed.
func (t *Task) Due() time.Time {
	if t.d == nil {
		return time.Time{}
	}
	return t.d.Due
}

// Cancel cancels the task. A delayed task or item is removed before it
// fires: it never runs; ErrFired when it fired already (it may have run).
// A task (Submit) put at once is marked cancelled: no consumer runs it,
// and one running it has its handler's context cancelled; such a task has
// no answer, so Cancel cannot tell whether it had finished already.
// ErrNotDelayed for an item put at once.
func (t *Task) Cancel(ctx context.Context) error {
	if t.cancel == nil {
		return ErrNotDelayed
	}
	return t.cancel(ctx)
}

// Put adds v, encoded as JSON, at the end of the message queue q, like
// Queue.put; with In or At the item joins the queue only then. With
// Unique it is refused (ErrDuplicate) while another item of q holds the
// key: until that item is taken, or the ttl passes.
func Put[T any](ctx context.Context, q *msgq.Queue, v T, opts ...TaskOption) (*Task, error) {
	o := taskOpts(opts)
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("queue %s: put: %w", q.Name(), err)
	}
	if err := noPriority(o, q.Name()); err != nil {
		return nil, err
	}
	if !o.Delayed() && o.Unique == "" {
		return &Task{}, q.Put(ctx, v)
	}
	data, err := task.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("queue %s: put: %w", q.Name(), err)
	}
	d, lock, err := q.PutJSONWith(ctx, data, o)
	if err != nil {
		return nil, err
	}
	return handle(d, lock, func(ctx context.Context) error { return q.Cancel(ctx, d) }), nil
}

// When is when a periodic schedule fires: Every or Cron.
type When struct {
	cron  string
	every time.Duration
	tz    string
}

// Every fires at an interval of at least a second.
func Every(d time.Duration) When { return When{every: d} }

// Cron fires by a six-field cron expression, seconds first
// ("0 */5 * * * *"), or @hourly, @daily, @weekly, @monthly, @yearly; read
// in UTC unless InZone says otherwise.
func Cron(expr string) When { return When{cron: expr} }

// InZone reads a Cron expression in the IANA time zone tz
// (Europe/Berlin).
func (w When) InZone(tz string) When { w.tz = tz; return w }

// Schedule creates the periodic schedule name on the client's queue: at
// each of its times the broker puts one task of kind with args on it. It
// fails with schedule.ErrExists when one of that name exists, and with
// schedule.ErrBadSpec (naming what) for a bad name, cron, zone or
// interval; nothing is created then.
func (c *Client) Schedule(ctx context.Context, name, kind string, args any, when When) error {
	raw, err := task.Marshal(args)
	if err != nil {
		return fmt.Errorf("schedule %s: args: %w", name, err)
	}
	spec := schedule.Spec{Name: name, Queue: c.cfg.Queue.Name, Kind: kind, Args: raw, Cron: when.cron, Every: when.every, TZ: when.tz}
	if err := spec.Validate(); err != nil {
		return err
	}
	if err := schedule.Supported(c.js); err != nil {
		return err
	}
	// PROCQ_SCHED first, then the schedule, then the queue it fires into:
	// a schedule the broker refuses leaves no queue behind, and firings
	// wait in PROCQ_SCHED until the queue's stream sources them.
	if _, err := protocol.EnsureSched(ctx, c.js, c.cfg.Queue.Replicas, c.log); err != nil {
		return err
	}
	if err := schedule.Add(ctx, c.js, spec); err != nil {
		return err
	}
	_, _, err = c.topology(ctx)
	return err
}

// Schedules lists every periodic schedule with its next firing.
func (c *Client) Schedules(ctx context.Context) ([]schedule.Entry, error) {
	return schedule.List(ctx, c.js, time.Now())
}

// Unschedule removes the named periodic schedule; its firings already
// queued still run.
func (c *Client) Unschedule(ctx context.Context, name string) error {
	return schedule.Remove(ctx, c.js, name)
}

// RunSchedule fires the named schedule once now, besides its own times,
// and returns the task's id.
func (c *Client) RunSchedule(ctx context.Context, name string) (string, error) {
	return schedule.RunNow(ctx, c.js, name)
}

// PendingTasks lists the delayed tasks that have not fired, of every
// queue (at most schedule.MaxPending).
func (c *Client) PendingTasks(ctx context.Context) ([]schedule.PendingTask, error) {
	return schedule.Pending(ctx, c.js, protocol.DelayedFilter)
}

// CancelTask cancels the task with the given id (its Procq-Task-Id), as
// "broker task cancel" does: a delayed task is removed before it fires;
// an input of a running map ("<map>.<index>", AsyncResult.ID) is
// cancelled by the map's producer: queued, it never runs; running, its
// handler's context is cancelled; its result is ErrCancelled.
// ErrNoSuchTask when nothing waits or runs under that id, ErrFinished
// when the task has its result already.
func (c *Client) CancelTask(ctx context.Context, id string) error {
	return ops.CancelTask(ctx, c.js, id)
}

// PauseQueue pauses the named task queue until until (ops.Forever from
// now: until resumed): its consumers stay connected and take nothing,
// sentinels included; producers may still put. ops.ErrNoQueue for a queue
// never declared.
func (c *Client) PauseQueue(ctx context.Context, queue string, until time.Time) error {
	return ops.PauseQueue(ctx, c.js, queue, until)
}

// ResumeQueue ends the named queue's pause: its consumers take work again
// where they left off.
func (c *Client) ResumeQueue(ctx context.Context, queue string) error {
	return ops.ResumeQueue(ctx, c.js, queue)
}
