package procq_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq"
	"github.com/procq/procq/protocol"
)

// keyGone waits until the unique key key of the task queue (or, item, the
// message queue) queue is released.
func keyGone(t *testing.T, c *procq.Client, queue, key string, item bool) {
	t.Helper()
	kvKey := protocol.UniqueTaskKey(queue, key)
	if item {
		kvKey = protocol.UniqueItemKey(queue, key)
	}
	kv, err := c.JetStream().KeyValue(t.Context(), protocol.UniqueBucket)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "unique key "+kvKey+" released", func() bool {
		_, err := kv.Get(t.Context(), kvKey)
		return errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted)
	})
}

// wantDuplicate checks that err refuses a put as a duplicate of the task
// first on queue.
func wantDuplicate(t *testing.T, what string, err error, key, queue, first string) {
	t.Helper()
	var de *procq.DuplicateError
	if !errors.Is(err, procq.ErrDuplicate) || !errors.As(err, &de) || de.FirstID != first || de.Key != key || de.Queue != queue {
		t.Errorf("%s: %v, want a duplicate of %s (key %q, queue %s)", what, err, first, key, queue)
	}
}

// A unique task refuses, with its id, a second Submit and an ApplyAsync
// of its key while it is queued; once it succeeded the key is free, and
// an ApplyAsync holds it until it succeeds in turn. The refused tasks
// never run, the others once. Bad keys and ttls put nothing. A unique
// task cancelled, queued or delayed, holds its key no longer.
func TestUniqueTasks(t *testing.T) {
	c := connect(t, "uniq")
	ctx := ctxT(t)
	p, err := c.Pool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	first, err := p.Submit(ctx, "stamp", "s1", procq.Unique("job:1", time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if first.ID() == "" {
		t.Fatal("a unique task has no id")
	}
	_, err = p.Submit(ctx, "stamp", "s2", procq.Unique("job:1", time.Minute))
	wantDuplicate(t, "second Submit", err, "job:1", "uniq", first.ID())
	_, err = procq.ApplyAsync[string, string](ctx, p, "stamp", "a1", procq.Unique("job:1", time.Hour))
	wantDuplicate(t, "ApplyAsync of the same key", err, "job:1", "uniq", first.ID())
	for _, opt := range []procq.TaskOption{procq.Unique("a*b", time.Minute), procq.Unique("k", 0)} {
		if _, err := p.Submit(ctx, "stamp", "bad", opt); !errors.Is(err, procq.ErrBadUnique) {
			t.Errorf("Submit with a bad unique option: %v, want ErrBadUnique", err)
		}
		if _, err := procq.ApplyAsync[string, string](ctx, p, "stamp", "bad", opt); !errors.Is(err, procq.ErrBadUnique) {
			t.Errorf("ApplyAsync with a bad unique option: %v, want ErrBadUnique", err)
		}
	}

	// A key is the queue's, whatever the priority: a high-priority task
	// holds it against a default one.
	high, err := p.Submit(ctx, "stamp", "high", procq.Priority(procq.High), procq.Unique("prio", time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Submit(ctx, "stamp", "high2", procq.Unique("prio", time.Minute))
	wantDuplicate(t, "Submit of a high-priority task's key", err, "prio", "uniq", high.ID())

	// A queued unique task cancelled: the consumer that drops it releases
	// its key.
	doomed, err := p.Submit(ctx, "stamp", "doomed", procq.Unique("doomed", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := doomed.Cancel(ctx); err != nil {
		t.Fatal(err)
	}

	s := stampWorker(t, c)
	waitFor(t, 20*time.Second, "s1 run", func() bool { return len(s.of("s1")) == 1 })
	keyGone(t, c, "uniq", "job:1", false)
	keyGone(t, c, "uniq", "doomed", false)
	waitFor(t, 20*time.Second, "high run", func() bool { return len(s.of("high")) == 1 })
	keyGone(t, c, "uniq", "prio", false)
	h, err := procq.ApplyAsync[string, string](ctx, p, "stamp", "a2", procq.Unique("job:1", time.Minute))
	if err != nil {
		t.Fatalf("ApplyAsync after the first succeeded: %v", err)
	}
	if h.ID() == "" || h.ID() == first.ID() {
		t.Errorf("the second holder's id %q, want a new one", h.ID())
	}
	if got, err := h.Get(ctx); err != nil || got != "a2" {
		t.Errorf("Get = %q, %v", got, err)
	}
	keyGone(t, c, "uniq", "job:1", false)

	// Delayed and unique: Cancel gives the key back.
	later, err := p.Submit(ctx, "stamp", "later", procq.In(time.Hour), procq.Unique("later", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if later.ID() == "" || later.ID() == first.ID() {
		t.Errorf("delayed unique task's id %q", later.ID())
	}
	_, err = p.Submit(ctx, "stamp", "later2", procq.Unique("later", time.Hour))
	wantDuplicate(t, "Submit of a delayed task's key", err, "later", "uniq", later.ID())
	if err := later.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	keyGone(t, c, "uniq", "later", false)

	for id, want := range map[string]int{"s1": 1, "s2": 0, "a1": 0, "a2": 1, "bad": 0, "later": 0, "later2": 0, "doomed": 0, "high": 1, "high2": 0} {
		if n := len(s.of(id)); n != want {
			t.Errorf("%s ran %d times, want %d", id, n, want)
		}
	}
}

// A unique message-queue item refuses a second Put of its key until a
// getter takes it; the refused item is never put.
func TestUniqueItems(t *testing.T) {
	c := connect(t, "uniqitems")
	ctx := ctxT(t)
	q, err := c.Queue(ctx, "uniqitems", 0)
	if err != nil {
		t.Fatal(err)
	}
	first, err := procq.Put(ctx, q, "one", procq.Unique("nightly", time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	_, err = procq.Put(ctx, q, "two", procq.Unique("nightly", time.Minute))
	wantDuplicate(t, "second Put", err, "nightly", "uniqitems", first.ID())
	if want := `duplicate: unique key "nightly" of queue uniqitems is held by item ` + first.ID(); err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
	if n, err := q.Len(ctx); err != nil || n != 1 {
		t.Errorf("queue holds %d items (%v), want 1", n, err)
	}
	if v, err := procq.Get[string](ctx, q, 5*time.Second); err != nil || v != "one" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	keyGone(t, c, "uniqitems", "nightly", true) // taken: released at once
	second, err := procq.Put(ctx, q, "three", procq.Unique("nightly", time.Minute))
	if err != nil || second.ID() == first.ID() {
		t.Fatalf("Put after the first was taken: %v (id %s)", err, second.ID())
	}
	if v, err := procq.Get[string](ctx, q, 5*time.Second); err != nil || v != "three" {
		t.Errorf("Get = %q, %v", v, err)
	}
	if _, err := procq.Get[string](ctx, q, 0); err == nil {
		t.Error("the queue held more than the two items put")
	}
}
