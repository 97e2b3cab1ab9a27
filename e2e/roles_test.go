package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/link"
	"github.com/procq/procq/protocol"
)

// Role credentials are on by default on procq's own broker: the demos run
// end to end with the producer and its consumers each presenting their
// role's credential, and the consumer's credential is refused everything
// beyond a consumer's work: purging the tasks, removing the dead letters,
// writing another queue's run record, putting work on another queue.
func TestRoleCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t, anyPort).set("PROCQ_BROKER_EMBEDDED", "false")
	e.startBroker()
	dir := filepath.Join(e.dir, "data", "creds")

	q := e.start("producer", "queue")
	q.mustExit(0, exitWait)
	wantQueueDemo(t, q.stdout.String())
	p := e.start("producer", "pool", "--kind", "square", "--inputs", "1..100", "--processes", "2", "--sleep", "0s")
	p.mustExit(0, exitWait)
	wantSquares(t, p.stdout.String(), 100)
	pipe := e.start("producer", "pipe", "--pause", "0s")
	pipe.mustExit(0, exitWait)
	wantPipeDemo(t, pipe.stdout.String())
	put := e.startIn(strings.NewReader("1\n2\n"), "producer", "put", "jobs")
	put.mustExit(0, exitWait)
	get := e.start("consumer", "get", "jobs", "-n", "2")
	get.mustExit(0, exitWait)
	if got := strings.Fields(get.stdout.String()); len(got) != 2 || got[0] != "1" || got[1] != "2" {
		t.Errorf("consumer get with the consumer's credential: %q, want 1 and 2", got)
	}
	// A unique item: the producer's credential claims its key, the
	// consumer's releases it when it takes the item.
	uput := func() string {
		p := e.startIn(strings.NewReader("\"u\"\n"), "producer", "put", "ujobs", "--unique", "k", "--unique-for", "1h")
		p.mustExit(0, exitWait)
		return strings.TrimSpace(p.stdout.String())
	}
	if id, dup := uput(), uput(); id == "" || dup != "" {
		t.Errorf("put --unique twice with the producer's credential printed %q and %q, want an id, then nothing", id, dup)
	}
	uget := e.start("consumer", "get", "ujobs")
	uget.mustExit(0, exitWait)
	if again := uput(); again == "" {
		t.Errorf("the key was not released by consumer get with the consumer's credential")
	}

	// The processes presented their roles' credentials, not the token.
	for _, log := range []string{"producer.log", "consumer-C-1.log"} {
		if b := readFile(t, filepath.Join(e.dir, "logs", log)); !strings.Contains(string(b), "connected to broker") {
			t.Errorf("%s does not say it connected", log)
		}
	}

	user, password, err := link.ReadRoleFile(filepath.Join(dir, "consumer"))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(e.url(), nats.UserInfo(user, password), nats.NoReconnect())
	if err != nil {
		t.Fatalf("connect with the consumer's credential: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	refused := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("with the consumer's credential, %s succeeded; want refused", what)
		}
	}
	try := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 3*time.Second)
	}
	ctx, cancel := try()
	if st, err := js.Stream(ctx, protocol.TasksStream); err == nil {
		refused("purging PROCQ_TASKS", st.Purge(ctx))
	} else {
		t.Errorf("the consumer's credential cannot read PROCQ_TASKS's info: %v", err)
	}
	cancel()
	ctx, cancel = try()
	refused("removing PROCQ_DEAD", js.DeleteStream(ctx, protocol.DeadStream))
	cancel()
	ctx, cancel = try()
	if kv, err := js.KeyValue(ctx, protocol.RunsBucket); err == nil {
		_, err = kv.Put(ctx, "other", []byte(`{"run":"x","state":"closed"}`))
		refused("writing another queue's run record", err)
	}
	cancel()
	ctx, cancel = try()
	_, err = js.Publish(ctx, protocol.WorkSubject("other", "r"), []byte(`{}`))
	refused("putting work on another queue", err)
	cancel()
	ctx, cancel = try()
	if kv, err := js.KeyValue(ctx, protocol.UniqueBucket); err == nil {
		_, err = kv.Create(ctx, protocol.UniqueTaskKey("other", "k"), []byte("x"))
		refused("holding another queue's unique key", err)
	} else {
		t.Errorf("the consumer's credential cannot open %s: %v", protocol.UniqueBucket, err)
	}
	cancel()

	// The producer's credential may not shrink the dead letters away.
	puser, ppassword, err := link.ReadRoleFile(filepath.Join(dir, "producer"))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := nats.Connect(e.url(), nats.UserInfo(puser, ppassword), nats.NoReconnect())
	if err != nil {
		t.Fatalf("connect with the producer's credential: %v", err)
	}
	defer pc.Close()
	pjs, _ := jetstream.New(pc)
	ctx, cancel = try()
	if s, err := pjs.Stream(ctx, protocol.DeadStream); err != nil {
		t.Errorf("the producer's credential cannot read PROCQ_DEAD's info: %v", err)
	} else {
		cfg := s.CachedInfo().Config
		cfg.MaxMsgs = 1
		_, err := pjs.UpdateStream(ctx, cfg)
		refused("shrinking PROCQ_DEAD with the producer's credential", err)
	}
	cancel()

	// Nothing of it happened: the streams are there, the other queue has
	// no work and no run record.
	admin, err := nats.Connect(e.url(), nats.Token(strings.TrimSpace(string(readFile(t, filepath.Join(e.dir, "data", "token"))))))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ajs, _ := jetstream.New(admin)
	ctx, cancel = try()
	defer cancel()
	for _, s := range []string{protocol.TasksStream, protocol.DeadStream} {
		if _, err := ajs.Stream(ctx, s); err != nil {
			t.Errorf("stream %s: %v", s, err)
		}
	}
	if dead, _ := ajs.Stream(ctx, protocol.DeadStream); dead != nil && dead.CachedInfo().Config.MaxMsgs == 1 {
		t.Errorf("PROCQ_DEAD was shrunk to one message")
	}
	tasks, _ := ajs.Stream(ctx, protocol.TasksStream)
	if n, err := protocol.Count(ctx, tasks, protocol.QueueFilter("other")); err != nil || n != 0 {
		t.Errorf("queue other has %d messages (%v), want 0", n, err)
	}
	runs, _ := ajs.KeyValue(ctx, protocol.RunsBucket)
	if _, err := runs.Get(ctx, "other"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("run record of queue other: %v, want none", err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
