package unique_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/unique"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// A bad key or ttl is refused with ErrBadKey and a message naming it;
// any other UTF-8 key is fine, dots, colons and non-ASCII included.
func TestCheck(t *testing.T) {
	long := strings.Repeat("k", 256)
	for _, c := range []struct {
		key  string
		ttl  time.Duration
		want string
	}{
		{"", time.Second, `bad unique key "": empty`},
		{long, time.Second, `bad unique key "` + long[:40] + `"...: 256 bytes, over 255`},
		{"a*b", time.Second, `bad unique key "a*b": '*' and '>' are not allowed`},
		{"a>", time.Second, `bad unique key "a>": '*' and '>' are not allowed`},
		{"a b", time.Second, `bad unique key "a b": white space and control characters are not allowed`},
		{"a\tb", time.Second, `bad unique key "a\tb": white space and control characters are not allowed`},
		{"a\x00", time.Second, `bad unique key "a\x00": white space and control characters are not allowed`},
		{"\xff", time.Second, `bad unique key "\xff": not UTF-8`},
		{"k", 0, `bad unique key "k": its ttl must be positive, got 0s`},
		{"k", -time.Second, `bad unique key "k": its ttl must be positive, got -1s`},
	} {
		err := unique.Check(c.key, c.ttl)
		if !errors.Is(err, unique.ErrBadKey) || err.Error() != c.want {
			t.Errorf("Check(%.50q, %v) = %v, want %q", c.key, c.ttl, err, c.want)
		}
	}
	for _, key := range []string{"k", strings.Repeat("k", 255), "report:2026-01-01", "a.b.c", "user@example.com", "日本", "=3D", "a/b"} {
		if err := unique.Check(key, time.Millisecond); err != nil {
			t.Errorf("Check(%q) = %v, want nil", key, err)
		}
	}
}

// Every key escapes to one valid key-value token and back.
func TestKeyToken(t *testing.T) {
	for _, key := range []string{"k", "report:2026-01-01", "a.b.c", "user@example.com", "日本", "=3D", "a/b", "x_y-z", strings.Repeat("\u00e9", 127)} {
		k := protocol.UniqueTaskKey("jobs", key)
		if strings.Count(k, ".") != 2 || strings.Trim(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=.") != "" {
			t.Errorf("key of %q is %q: not three tokens of letters, digits, '-', '_', '='", key, k)
		}
		item, queue, got, ok := protocol.ParseUniqueKey(k)
		if !ok || item || queue != "jobs" || got != key {
			t.Errorf("ParseUniqueKey(%q) = %v %q %q %v, want a task key of jobs, %q", k, item, queue, got, ok, key)
		}
		if item, queue, got, ok := protocol.ParseUniqueKey(protocol.UniqueItemKey("mq", key)); !ok || !item || queue != "mq" || got != key {
			t.Errorf("item key of %q parsed as %v %q %q %v", key, item, queue, got, ok)
		}
	}
	if got := protocol.UniqueTaskKey("jobs", "report:2026.01"); got != "tasks.jobs.report=3A2026=2E01" {
		t.Errorf("UniqueTaskKey = %q", got)
	}
}

// msg is a task message about to be put.
func msg() *nats.Msg { return &nats.Msg{Subject: "procq.tasks.jobs.work.r", Header: nats.Header{}} }

// The first claim of a key wins and names its task on the message; a
// second is a *DuplicateError with the first's id; a release by another
// id leaves the key, by the holder's id frees it; a lock released after
// its key changed hands leaves the new holder alone. Held counts the keys.
func TestClaimDuplicateRelease(t *testing.T) {
	ctx := ctxT(t)
	js := natstest.Start(t).JetStream(t)
	b := unique.NewBucket(js, 1, nil)
	kvKey := protocol.UniqueTaskKey("jobs", "report:1")

	m1 := msg()
	first, err := b.Claim(ctx, m1, "jobs", kvKey, "report:1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if first.ID == "" || m1.Header.Get(protocol.HeaderTaskID) != first.ID || m1.Header.Get(protocol.HeaderUnique) != "report:1" {
		t.Errorf("claimed message headers %v, want Procq-Task-Id %s and Procq-Unique report:1", m1.Header, first.ID)
	}
	m2 := msg()
	m2.Header.Set(protocol.HeaderTaskID, "T2") // an id of its own is kept
	_, err = b.Claim(ctx, m2, "jobs", kvKey, "report:1", time.Minute)
	var de *unique.DuplicateError
	if !errors.As(err, &de) || !errors.Is(err, unique.ErrDuplicate) || de.FirstID != first.ID || de.Key != "report:1" || de.Queue != "jobs" {
		t.Fatalf("second claim: %v, want a DuplicateError naming %s", err, first.ID)
	}
	if want := `duplicate: unique key "report:1" of queue jobs is held by task ` + first.ID; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if m2.Header.Get(protocol.HeaderTaskID) != "T2" {
		t.Errorf("claim replaced the message's own id with %q", m2.Header.Get(protocol.HeaderTaskID))
	}
	// Another key of the same queue, and the same key on a message queue, are free.
	if _, err := b.Claim(ctx, msg(), "jobs", protocol.UniqueTaskKey("jobs", "report:2"), "report:2", time.Minute); err != nil {
		t.Errorf("another key: %v", err)
	}
	if _, err := b.Claim(ctx, msg(), "jobs", protocol.UniqueItemKey("jobs", "report:1"), "report:1", time.Minute); err != nil {
		t.Errorf("the same key on the message queue jobs: %v", err)
	}
	tasks, items, err := unique.Held(ctx, js)
	if err != nil || tasks["jobs"] != 2 || items["jobs"] != 1 || len(tasks) != 1 || len(items) != 1 {
		t.Errorf("Held = %v, %v, %v; want tasks jobs:2, items jobs:1", tasks, items, err)
	}

	if err := b.Done(ctx, kvKey, "T2"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Claim(ctx, msg(), "jobs", kvKey, "report:1", time.Minute); !errors.Is(err, unique.ErrDuplicate) {
		t.Fatalf("after a release by another id: %v, want still held", err)
	}
	if err := b.Done(ctx, kvKey, first.ID); err != nil {
		t.Fatal(err)
	}
	second, err := b.Claim(ctx, msg(), "jobs", kvKey, "report:1", time.Minute)
	if err != nil {
		t.Fatalf("after the holder's release: %v, want claimed", err)
	}
	if err := first.Release(ctx); err != nil { // stale: the key is second's now
		t.Fatal(err)
	}
	_, err = b.Claim(ctx, msg(), "jobs", kvKey, "report:1", time.Minute)
	if !errors.As(err, &de) || de.FirstID != second.ID {
		t.Errorf("after a stale lock's release: %v, want held by %s", err, second.ID)
	}
	if err := second.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if tasks, _, err := unique.Held(ctx, js); err != nil || tasks["jobs"] != 1 {
		t.Errorf("Held after the releases = %v, %v; want jobs:1 (report:2)", tasks, err)
	}
}

// A key is free again once its ttl has passed, not before, and released
// keys leave no marker behind once UniqueMarkerTTL has passed.
func TestTTL(t *testing.T) {
	ctx := ctxT(t)
	js := natstest.Start(t).JetStream(t)
	b := unique.NewBucket(js, 1, nil)
	kvKey := protocol.UniqueItemKey("mq", "k")
	const ttl = 2 * time.Second
	t0 := time.Now()
	first, err := b.Claim(ctx, msg(), "mq", kvKey, "k", ttl)
	if err != nil {
		t.Fatal(err)
	}
	var freed time.Duration
	for {
		l, err := b.Claim(ctx, msg(), "mq", kvKey, "k", ttl)
		if err == nil {
			freed = time.Since(t0)
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			break
		}
		var de *unique.DuplicateError
		if !errors.As(err, &de) || de.FirstID != first.ID {
			t.Fatalf("claim before the ttl: %v", err)
		}
		if time.Since(t0) > ttl+5*time.Second {
			t.Fatalf("key still held %v after a ttl of %v", time.Since(t0), ttl)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if freed < ttl {
		t.Errorf("key free after %v, before its ttl of %v", freed, ttl)
	}
	t.Logf("a key with a ttl of %v was free again %v after its claim", ttl, freed)

	// Nothing left behind: the expiry's and the release's markers go.
	s, err := js.Stream(ctx, "KV_"+protocol.UniqueBucket)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages left in the bucket 10 s after the last release, want 0", info.State.Msgs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := unique.TTL(1500 * time.Millisecond); got != 2*time.Second {
		t.Errorf("TTL(1.5s) = %v, want 2s", got)
	}
	if got := unique.TTL(time.Millisecond); got != time.Second {
		t.Errorf("TTL(1ms) = %v, want 1s", got)
	}
}

// Of 20 claims of one key at once, from 20 connections, exactly one wins
// and the 19 others name it.
func TestConcurrentClaims(t *testing.T) {
	ctx := ctxT(t)
	srv := natstest.Start(t)
	if _, err := unique.NewBucket(srv.JetStream(t), 1, nil).Claim(ctx, msg(), "jobs",
		protocol.UniqueTaskKey("jobs", "warm"), "warm", time.Minute); err != nil {
		t.Fatal(err) // the bucket exists before the race
	}
	const n = 20
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		b := unique.NewBucket(srv.JetStream(t), 1, nil)
		wg.Go(func() {
			<-start
			l, err := b.Claim(ctx, msg(), "jobs", protocol.UniqueTaskKey("jobs", "race"), "race", time.Minute)
			if err == nil {
				ids[i] = l.ID
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	winner := ""
	for i, err := range errs {
		if err == nil {
			if winner != "" {
				t.Errorf("two claims won: %s and %s", winner, ids[i])
			}
			winner = ids[i]
		}
	}
	if winner == "" {
		t.Fatalf("no claim won: %v", errs)
	}
	for _, err := range errs {
		var de *unique.DuplicateError
		if err != nil && (!errors.As(err, &de) || de.FirstID != winner) {
			t.Errorf("a losing claim: %v, want a duplicate of %s", err, winner)
		}
	}
}

// A process that only releases does not create the bucket; with none,
// there is nothing to release and no error.
func TestDoneWithoutBucket(t *testing.T) {
	ctx := ctxT(t)
	js := natstest.Start(t).JetStream(t)
	b := unique.NewBucket(js, 1, nil)
	if err := b.Done(ctx, protocol.UniqueTaskKey("jobs", "k"), "id"); err != nil {
		t.Fatal(err)
	}
	if _, err := js.KeyValue(ctx, protocol.UniqueBucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("after Done: bucket lookup %v, want none created", err)
	}
	tasks, items, err := unique.Held(ctx, js)
	if err != nil || len(tasks) != 0 || len(items) != 0 {
		t.Errorf("Held without a bucket = %v, %v, %v", tasks, items, err)
	}
}

// BenchmarkClaim is the cost of a unique put's claim (a key created, the
// put's extra round trip), then BenchmarkDuplicate of a refused one (the
// create refused, the holder read, the duplicate counted).
func BenchmarkClaim(b *testing.B) {
	js := natstest.Start(b).JetStream(b)
	u := unique.NewBucket(js, 1, nil)
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		k := "k" + strconv.Itoa(i)
		if _, err := u.Claim(ctx, msg(), "jobs", protocol.UniqueTaskKey("jobs", k), k, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDuplicate(b *testing.B) {
	js := natstest.Start(b).JetStream(b)
	if _, err := protocol.EnsureQueue(context.Background(), js, protocol.QueueConfig{Name: "jobs"}); err != nil {
		b.Fatal(err) // the counters' stream
	}
	u := unique.NewBucket(js, 1, nil)
	ctx := context.Background()
	kvKey := protocol.UniqueTaskKey("jobs", "k")
	if _, err := u.Claim(ctx, msg(), "jobs", kvKey, "k", time.Hour); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := u.Claim(ctx, msg(), "jobs", kvKey, "k", time.Hour); !errors.Is(err, unique.ErrDuplicate) {
			b.Fatal(err)
		}
	}
}
