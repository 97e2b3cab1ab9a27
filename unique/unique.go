// Package unique holds procq's unique tasks: a task or message-queue item
// put with a unique key is refused, with the id of the task that holds
// the key, while another put of the same key holds it. A key is held from
// the put for its ttl, or until the task holding it succeeds or is
// cancelled (its consumer, or for an item the getter that took it,
// releases the key), whichever comes first: the uniqueness lock of
// asynq's Unique.
//
// The keys live in the key-value bucket PROCQ_UNIQUE
// (protocol.UniqueBucket), one per held key, valued with the holder's task
// id and with a per-key TTL: JetStream's compare-and-set create makes the
// first of any number of concurrent puts win, on one server or a cluster.
package unique

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/procq/procq/link"
	"github.com/procq/procq/protocol"
)

// ErrDuplicate is the error of a put refused because another task holds
// its unique key; the error is a *DuplicateError naming that task.
var ErrDuplicate = errors.New("duplicate")

// ErrBadKey says a unique key or its ttl cannot be used.
var ErrBadKey = protocol.ErrBadUnique

// DuplicateError is a put refused because the task FirstID holds its
// unique key Key on Queue. errors.Is(err, ErrDuplicate) holds.
// Item says Queue is a message queue and FirstID one of its items.
type DuplicateError struct {
	Key     string
	Queue   string
	FirstID string
	Item    bool
}

func (e *DuplicateError) Error() string {
	what := "task"
	if e.Item {
		what = "item"
	}
	return fmt.Sprintf("duplicate: unique key %q of queue %s is held by %s %s", e.Key, e.Queue, what, e.FirstID)
}

// Is makes errors.Is(err, ErrDuplicate) hold.
func (e *DuplicateError) Is(target error) bool { return target == ErrDuplicate }

// Check says why key and ttl cannot be used, or nil: a key is 1 to 255
// bytes of UTF-8 without '*', '>', white space or control characters,
// and the ttl is positive.
func Check(key string, ttl time.Duration) error { return protocol.CheckUnique(key, ttl) }

// CheckKey is Check of the key alone.
func CheckKey(key string) error { return protocol.CheckUniqueKey(key) }

// TTL is the ttl a key is held with: JetStream counts per-key TTLs in
// whole seconds, so ttl is rounded up to the next second.
func TTL(ttl time.Duration) time.Duration {
	return max((ttl+time.Second-1)/time.Second*time.Second, time.Second)
}

// Bucket is PROCQ_UNIQUE as one process uses it, opened on first use.
type Bucket struct {
	js       jetstream.JetStream
	replicas int // of the bucket, when a claim creates it
	log      *slog.Logger

	mu sync.Mutex
	kv jetstream.KeyValue
}

// NewBucket returns the bucket of a process; the first claim creates it
// with replicas (at least 1) when it does not exist.
func NewBucket(js jetstream.JetStream, replicas int, logger *slog.Logger) *Bucket {
	return &Bucket{js: js, replicas: max(replicas, 1), log: cmp.Or(logger, slog.New(slog.DiscardHandler))}
}

// open returns the bucket, creating it when create is set; nil and no
// error when it does not exist and create is not set (no key is held).
func (b *Bucket) open(ctx context.Context, create bool) (jetstream.KeyValue, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kv != nil {
		return b.kv, nil
	}
	kv, err := b.js.KeyValue(ctx, protocol.UniqueBucket)
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound) && !create:
		return nil, nil
	case errors.Is(err, jetstream.ErrBucketNotFound):
		kv, err = link.EnsureKeyValue(ctx, b.js, protocol.UniqueBucketConfig(b.replicas), b.log)
	}
	if errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported) {
		return nil, fmt.Errorf("unique tasks need per-key TTLs (nats-server 2.11 or later); the broker is nats-server %s",
			b.js.Conn().ConnectedServerVersion())
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", protocol.UniqueBucket, err)
	}
	b.kv = kv
	return kv, nil
}

// Lock is a unique key held by the task put with it.
type Lock struct {
	b     *Bucket
	kvKey string
	rev   uint64
	// ID is the task's id, the key's value.
	ID string
}

// claimTries bounds the tries of a claim whose key goes and comes back
// between the create and the read of its holder.
const claimTries = 5

// Claim takes the unique key key of queue (at kvKey, protocol's
// UniqueTaskKey or UniqueItemKey) for ttl for the task msg, which is
// about to be published: msg's Procq-Task-Id is the holder's id (one is
// made and set when msg has none), and its Procq-Unique is set to key. A
// key held by another task is a *DuplicateError naming it. When the
// publish then fails, Release the lock.
func (b *Bucket) Claim(ctx context.Context, msg *nats.Msg, queue, kvKey, key string, ttl time.Duration) (*Lock, error) {
	if err := Check(key, ttl); err != nil {
		return nil, err
	}
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	id := msg.Header.Get(protocol.HeaderTaskID)
	if id == "" {
		id = nuid.Next()
		msg.Header.Set(protocol.HeaderTaskID, id)
	}
	msg.Header.Set(protocol.HeaderUnique, key)
	kv, err := b.open(ctx, true)
	if err != nil {
		return nil, err
	}
	for range claimTries {
		rev, err := kv.Create(ctx, kvKey, []byte(id), jetstream.KeyTTL(TTL(ttl)))
		if err == nil {
			return &Lock{b: b, kvKey: kvKey, rev: rev, ID: id}, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("unique key %q: %w", key, err)
		}
		e, err := kv.Get(ctx, kvKey)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue // released or expired since: try again
		}
		if err != nil {
			return nil, fmt.Errorf("unique key %q: %w", key, err)
		}
		item, _, _, _ := protocol.ParseUniqueKey(kvKey)
		what := protocol.CountDuplicate
		if item {
			what = protocol.CountDuplicateItem
		}
		if err := protocol.Increment(ctx, b.js, what, queue); err != nil {
			b.log.DebugContext(ctx, "counter not stored", "counter", what, "queue", queue, "error", err)
		}
		return nil, &DuplicateError{Key: key, Queue: queue, FirstID: string(e.Value()), Item: item}
	}
	return nil, fmt.Errorf("unique key %q: not claimed in %d tries: released and taken again each time", key, claimTries)
}

// releaseWait bounds a release's wait for the broker.
const releaseWait = 5 * time.Second

// Release gives the key back when it is still the lock's: the task was
// never stored (its publish failed) or was cancelled. A key that expired
// and was taken again since is left alone.
func (l *Lock) Release(ctx context.Context) error {
	if l == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseWait)
	defer cancel()
	return l.b.remove(ctx, l.kvKey, l.rev)
}

// Done releases the key at kvKey when the task id still holds it: what
// the consumer of a task that succeeded, or the getter of an item, does.
// Nothing happens when the bucket does not exist or the key is gone or
// another task's.
func (b *Bucket) Done(ctx context.Context, kvKey, id string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseWait)
	defer cancel()
	kv, err := b.open(ctx, false)
	if err != nil || kv == nil {
		return err
	}
	e, err := kv.Get(ctx, kvKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release unique key %s: %w", kvKey, err)
	}
	if string(e.Value()) != id {
		return nil // expired, and another task's since
	}
	return b.remove(ctx, kvKey, e.Revision())
}

// remove purges kvKey when its revision is still rev. The purge's marker
// goes after UniqueMarkerTTL, so released keys leave nothing behind.
func (b *Bucket) remove(ctx context.Context, kvKey string, rev uint64) error {
	kv, err := b.open(ctx, false)
	if err != nil || kv == nil {
		return err
	}
	err = kv.Purge(ctx, kvKey, jetstream.LastRevision(rev), jetstream.PurgeTTL(protocol.UniqueMarkerTTL))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return nil // expired, perhaps taken again: no longer this lock's
	}
	if err != nil {
		return fmt.Errorf("release unique key %s: %w", kvKey, err)
	}
	return nil
}

// DoneMsg is Done for the task or item msg of queue (item: a message
// queue's) once it succeeded, when it was put with a unique key; the
// error is logged, not returned: a key not released lasts until its ttl.
func (b *Bucket) DoneMsg(ctx context.Context, h nats.Header, queue string, item bool) {
	key := h.Get(protocol.HeaderUnique)
	if key == "" {
		return
	}
	kvKey := protocol.UniqueTaskKey(queue, key)
	if item {
		kvKey = protocol.UniqueItemKey(queue, key)
	}
	if err := b.Done(ctx, kvKey, h.Get(protocol.HeaderTaskID)); err != nil {
		b.log.WarnContext(ctx, "unique key not released; it lasts until its ttl", "queue", queue, "unique_key", key, "error", err)
	}
}

// Held counts the unique keys held, by task queue and by message queue.
func Held(ctx context.Context, js jetstream.JetStream) (tasks, items map[string]int, err error) {
	tasks, items = map[string]int{}, map[string]int{}
	kv, err := js.KeyValue(ctx, protocol.UniqueBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return tasks, items, nil
	}
	if err != nil {
		return nil, nil, err
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l, err := kv.ListKeysFiltered(lctx, protocol.UniqueTaskFilter, protocol.UniqueItemFilter)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		cancel()
		for range l.Keys() { // let the lister's goroutine end
		}
	}()
	for k := range l.Keys() {
		if item, queue, _, ok := protocol.ParseUniqueKey(k); ok && item {
			items[queue]++
		} else if ok {
			tasks[queue]++
		}
	}
	return tasks, items, ctx.Err()
}
