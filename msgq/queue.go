// Package msgq is procq's message queue between processes, like Python's
// multiprocessing.Queue: Put any JSON value, Get it in another process.
// Items are durable (a JetStream work-queue stream per queue), each goes
// to exactly one getter, in the order they were put, and a queue opened
// with a maxsize makes Put wait for room instead of growing without end.
package msgq

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/procq/procq/demo"
	"github.com/procq/procq/link"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/schedule"
	"github.com/procq/procq/task"
	"github.com/procq/procq/unique"
)

var (
	// ErrEmpty is Get's error when no item came within its timeout, like
	// Python's queue.Empty.
	ErrEmpty = errors.New("queue empty")
	// ErrFull is Put's error when a bounded queue had no room within its
	// timeout, like Python's queue.Full.
	ErrFull = errors.New("queue full")
)

// Config configures a queue.
type Config struct {
	// MaxSize bounds the items the queue holds: Put waits for room. It is
	// the queue's, for every process that uses it: opening with MaxSize > 0
	// sets it; 0 keeps what the queue has (unbounded for a new queue).
	MaxSize int
	// PutTimeout is how long Put waits for room in a full queue. Defaults
	// to 30s.
	PutTimeout time.Duration
	// Replicas is the stream's replica count in a cluster. Defaults to protocol.DefaultReplicas.
	Replicas int
	// UseAsIs opens a queue that exists as it is, changing nothing of its
	// stream: for a client whose credential may read the topology and not
	// declare it (a consumer's role). A queue that does not exist is then
	// created as usual, where the credential allows.
	UseAsIs bool
}

// Queue is one named message queue.
type Queue struct {
	name string
	cfg  Config
	js   jetstream.JetStream
	st   jetstream.Stream
	// sched holds the queue's delayed items; nil when the broker cannot.
	sched jetstream.Stream
	cons  jetstream.Consumer
	log   *slog.Logger
	// unique holds the keys of its unique items.
	unique *unique.Bucket
}

// Open declares the named queue (its stream and its getters' shared
// durable consumer) and returns it.
func Open(ctx context.Context, js jetstream.JetStream, name string, cfg Config, logger *slog.Logger) (*Queue, error) {
	if err := task.ValidName(name); err != nil {
		return nil, fmt.Errorf("queue name: %w", err)
	}
	if cfg.MaxSize < 0 {
		return nil, fmt.Errorf("queue %s: maxsize must not be negative", name)
	}
	cfg.PutTimeout = cmp.Or(cfg.PutTimeout, protocol.DefaultPutTimeout)
	cfg.Replicas = cmp.Or(cfg.Replicas, protocol.DefaultReplicas)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	max := int64(0) // keep the queue's bound (EnsureStream keeps a zero's); none when new
	if cfg.MaxSize > 0 {
		max = int64(cfg.MaxSize)
	}
	sched, err := protocol.EnsureSched(ctx, js, cfg.Replicas, logger)
	if err != nil {
		return nil, fmt.Errorf("queue %s: %w", name, err)
	}
	sc := protocol.MsgQueueStreamConfig(name, max, cfg.Replicas, sched != nil)
	st, err := js.Stream(ctx, sc.Name)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) && cfg.UseAsIs {
		return nil, fmt.Errorf("queue %s: %w", name, err)
	}
	if err != nil || !cfg.UseAsIs {
		for _, src := range sc.Sources {
			if err := protocol.EnsureSourceConsumer(ctx, js, src, cfg.Replicas); err != nil {
				return nil, fmt.Errorf("queue %s: %w", name, err)
			}
		}
		if st, err = link.EnsureStream(ctx, js, sc, logger); err != nil {
			return nil, fmt.Errorf("queue %s: %w", name, err)
		}
	}
	cons, err := st.Consumer(ctx, protocol.MsgQueueGetters)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = st.CreateOrUpdateConsumer(ctx, protocol.MsgQueueGettersConfig(cfg.Replicas))
	}
	if err != nil {
		return nil, fmt.Errorf("queue %s: getters' consumer: %w", name, err)
	}
	if cfg.MaxSize == 0 {
		cfg.MaxSize = max0(st.CachedInfo().Config.MaxMsgs)
	}
	log := logger.With("queue", name)
	return &Queue{name: name, cfg: cfg, js: js, st: st, sched: sched, cons: cons, log: log,
		unique: unique.NewBucket(js, cfg.Replicas, log)}, nil
}

// Name is the queue's name.
func (q *Queue) Name() string { return q.name }

// Put adds v, encoded as JSON, at the end of the queue once the broker
// has stored it. When the queue is full it waits for room, up to
// PutTimeout or ctx's end, then fails with ErrFull.
func (q *Queue) Put(ctx context.Context, v any) error {
	data, err := task.Marshal(v)
	if err != nil {
		return fmt.Errorf("queue %s: put: %w", q.name, err)
	}
	return q.PutJSON(ctx, data)
}

// PutJSON is Put of a value already encoded; it must be valid JSON.
func (q *Queue) PutJSON(ctx context.Context, data json.RawMessage) error {
	_, _, err := q.putJSON(ctx, data, protocol.TaskOptions{})
	return err
}

// PutJSONAt is PutJSON of an item that joins the queue at at, not
// before: a delayed item, held by the broker until then (a time in the
// past puts it at once). Its handle can cancel it before.
func (q *Queue) PutJSONAt(ctx context.Context, data json.RawMessage, at time.Time) (*schedule.Delayed, error) {
	d, _, err := q.PutJSONWith(ctx, data, protocol.TaskOptions{At: at})
	return d, err
}

// PutJSONWith is PutJSON of an item with options: delayed until o.At
// (PutJSONAt; then with a handle), unique by o.Unique for o.UniqueFor
// (then with its lock, whose ID is the item's id). A unique item is
// refused with a *unique.DuplicateError while another item of the queue
// holds its key: until a getter took that one (Done), or its ttl passed.
// Other options are not an item's and are ignored.
func (q *Queue) PutJSONWith(ctx context.Context, data json.RawMessage, o protocol.TaskOptions) (*schedule.Delayed, *unique.Lock, error) {
	if o.Delayed() && q.sched == nil {
		return nil, nil, fmt.Errorf("queue %s: put: %w", q.name, schedule.Supported(q.js))
	}
	return q.putJSON(ctx, data, o)
}

// Cancel removes the delayed item d (from PutJSONAt) before it joins
// the queue; schedule.ErrFired when it joined already.
func (q *Queue) Cancel(ctx context.Context, d *schedule.Delayed) error { return d.Cancel(ctx, q.js) }

func (q *Queue) putJSON(ctx context.Context, data json.RawMessage, o protocol.TaskOptions) (*schedule.Delayed, *unique.Lock, error) {
	if !task.Valid(data) {
		return nil, nil, fmt.Errorf("queue %s: put: not a JSON value: %.100q", q.name, data)
	}
	// One id for every try: a try whose answer was lost is not stored twice.
	msg := &nats.Msg{Subject: protocol.MsgQueueSubject(q.name), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, nuid.Next())
	var d *schedule.Delayed
	if o.Delayed() {
		d = schedule.Delay(msg, o.At) // its id first: the key's value
	}
	var lock *unique.Lock
	if o.Unique != "" {
		var err error
		lock, err = q.unique.Claim(ctx, msg, q.name, protocol.UniqueItemKey(q.name, o.Unique), o.Unique, o.UniqueFor)
		var de *unique.DuplicateError
		if errors.As(err, &de) {
			return nil, nil, de
		}
		if err != nil {
			return nil, nil, fmt.Errorf("queue %s: put: %w", q.name, err)
		}
	}
	d, err := q.publish(ctx, msg, d)
	if err != nil {
		return nil, nil, errors.Join(err, lock.Release(ctx))
	}
	return d, lock, nil
}

// publish stores msg, retrying while the queue is full or the broker does
// not answer, up to PutTimeout; d is returned as it is.
func (q *Queue) publish(ctx context.Context, msg *nats.Msg, d *schedule.Delayed) (*schedule.Delayed, error) {
	deadline := time.Now().Add(q.cfg.PutTimeout)
	pause := 10 * time.Millisecond
	logged := false
	for {
		_, err := q.js.PublishMsg(ctx, msg)
		if err == nil {
			return d, nil
		}
		if !full(err) && !link.Transient(err) {
			return nil, fmt.Errorf("queue %s: put: %w", q.name, err)
		}
		if time.Now().After(deadline) {
			if full(err) {
				return nil, fmt.Errorf("queue %s: %w: no room for %v (maxsize %d)", q.name, ErrFull, q.cfg.PutTimeout, q.cfg.MaxSize)
			}
			return nil, fmt.Errorf("queue %s: put: %w", q.name, err)
		}
		if !logged {
			q.log.InfoContext(ctx, "put waiting", "waiting_for", "room in the queue", "maxsize", q.cfg.MaxSize,
				"timeout", q.cfg.PutTimeout, "error", err)
			logged = true
		}
		if err := demo.Sleep(ctx, pause); err != nil {
			return nil, fmt.Errorf("queue %s: put: %w", q.name, err)
		}
		pause = min(2*pause, 250*time.Millisecond)
	}
}

// full reports whether the stream refused a message for lack of room.
func full(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && strings.Contains(apiErr.Description, "maximum messages")
}

// Get takes the item at the head of the queue, waiting up to timeout for
// one (0: do not wait, like get_nowait), and returns ErrEmpty when none
// came. The item is removed once the broker confirms it, so it goes to no
// other getter. When that confirmation fails, Get returns the error: the
// item comes back for a later Get after 30 s, unless the broker did
// remove it and only its answer was lost.
func (q *Queue) Get(ctx context.Context, timeout time.Duration) (json.RawMessage, error) {
	it, err := q.Take(ctx, timeout)
	if err != nil {
		return nil, err
	}
	if err := it.Done(ctx); err != nil {
		return nil, err
	}
	return it.Data(), nil
}

// Item is an item taken from a queue and not yet removed: Done removes it
// once the taker has used it, Return hands it back for another getter. An
// item neither done nor returned comes back by itself after 30 s.
type Item struct {
	q        *Queue
	msg      jetstream.Msg
	returned bool
}

// returnWait bounds Return's wait for the broker's confirmation.
const returnWait = 5 * time.Second

// Data is the item's JSON value.
func (it *Item) Data() json.RawMessage { return it.msg.Data() }

// Done removes the item, once the broker confirms it, and releases its
// unique key, if it has one.
func (it *Item) Done(ctx context.Context) error {
	if it.returned {
		return fmt.Errorf("queue %s: done: %w", it.q.name, jetstream.ErrMsgAlreadyAckd)
	}
	if err := it.msg.DoubleAck(ctx); err != nil {
		return fmt.Errorf("queue %s: get: removal not confirmed, the item may come back: %w", it.q.name, err)
	}
	// A unique item taken holds its key no longer.
	it.q.unique.DoneMsg(ctx, it.msg.Headers(), it.q.name, true)
	return nil
}

// Return hands the item back to the head of the queue's line, once the
// broker confirms it, so that the next Get gets it. When the confirmation
// does not come, Return returns the error: the item comes back by itself
// after 30 s, unless only the confirmation was lost.
func (it *Item) Return() error {
	if it.returned {
		return fmt.Errorf("queue %s: return: %w", it.q.name, jetstream.ErrMsgAlreadyAckd)
	}
	// Msg.Nak does not wait: the broker handles acks apart from fetches,
	// so a Get right after it could be served before the item is back in
	// line. A nak sent as a request is answered once it is.
	ctx, cancel := context.WithTimeout(context.Background(), returnWait)
	defer cancel()
	if _, err := it.q.js.Conn().RequestWithContext(ctx, it.msg.Reply(), []byte("-NAK")); err != nil {
		return fmt.Errorf("queue %s: return not confirmed: %w", it.q.name, err)
	}
	it.returned = true
	return nil
}

// Take is Get in two steps, for a taker that must use an item before it
// is removed (print it, say): the item is Done or Returned after.
func (q *Queue) Take(ctx context.Context, timeout time.Duration) (*Item, error) {
	var batch jetstream.MessageBatch
	var err error
	if timeout <= 0 {
		batch, err = q.cons.FetchNoWait(1)
	} else {
		fctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		batch, err = q.cons.Fetch(1, jetstream.FetchContext(fctx))
	}
	if err != nil {
		return nil, fmt.Errorf("queue %s: get: %w", q.name, err)
	}
	for msg := range batch.Messages() {
		return &Item{q: q, msg: msg}, nil
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("queue %s: get: %w", q.name, context.Cause(ctx))
	}
	if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
		return nil, fmt.Errorf("queue %s: get: %w", q.name, err)
	}
	return nil, fmt.Errorf("queue %s: %w", q.name, ErrEmpty)
}

// GetInto is Get decoding the item into v. An item that does not decode
// into v stays at the head of the queue, for a getter that can read it
// (Get takes it raw): nothing is lost to a wrong type.
func (q *Queue) GetInto(ctx context.Context, timeout time.Duration, v any) error {
	it, err := q.Take(ctx, timeout)
	if err != nil {
		return err
	}
	if err := task.Unmarshal(it.Data(), v); err != nil {
		derr := fmt.Errorf("queue %s: decode item (left on the queue): %w", q.name, err)
		return errors.Join(derr, it.Return())
	}
	return it.Done(ctx)
}

// Len is how many items the queue holds: not yet taken, or taken and not
// yet confirmed. Like Python's qsize, it may be out of date as soon as it
// returns.
func (q *Queue) Len(ctx context.Context) (int, error) {
	info, err := q.st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("queue %s: len: %w", q.name, err)
	}
	return int(info.State.Msgs), nil
}

func max0(n int64) int { return int(max(n, 0)) }
