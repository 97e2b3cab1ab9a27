package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/procq/procq"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/ops"
)

// uniquePuts: put --unique from the shell on a message queue. Bad keys and
// flags exit 2 and put nothing; a second put of a held key puts nothing
// and says so, exit 0 (exit 1 with --strict), while the first item waits
// in the queue, which holds exactly one item and one unique key
// meanwhile; once the ttl has passed the key is accepted again; a
// getter's take releases a key at once. A subtest of
// TestScheduleStandalone, on its broker.
func uniquePuts(t *testing.T, e *env) {
	long := strings.Repeat("k", 256)
	bad := []struct {
		in   string
		args []string
		says string
	}{
		{`"x"`, []string{"--unique=", "--unique-for", "1m"}, `producer: --unique: bad unique key "": empty`},
		{`"x"`, []string{"--unique", long, "--unique-for", "1m"}, `producer: --unique: bad unique key "` + long[:40] + `"...: 256 bytes, over 255`},
		{`"x"`, []string{"--unique", "a*b", "--unique-for", "1m"}, `producer: --unique: bad unique key "a*b": '*' and '>' are not allowed`},
		{`"x"`, []string{"--unique", "a>", "--unique-for", "1m"}, `producer: --unique: bad unique key "a>": '*' and '>' are not allowed`},
		{`"x"`, []string{"--unique", "a b", "--unique-for", "1m"}, `producer: --unique: bad unique key "a b": white space and control characters are not allowed`},
		{`"x"`, []string{"--unique", "k", "--unique-for", "0s"}, "producer: --unique-for must be positive, got 0s"},
		{`"x"`, []string{"--unique", "k", "--unique-for=-1s"}, "producer: --unique-for must be positive, got -1s"},
		{`"x"`, []string{"--unique", "k"}, "producer: --unique needs --unique-for, how long the key is held at most (e.g. 10m)"},
		{`"x"`, []string{"--unique-for", "1m"}, "producer: --unique-for needs --unique KEY"},
		{`"x"`, []string{"--strict"}, "producer: --strict needs --unique KEY"},
		{"\"x\"\n\n\"y\"", []string{"--unique", "k", "--unique-for", "1m"}, "producer: --unique puts one item, and stdin line 3 holds a second value; nothing put"},
		{"", []string{"--unique", "k", "--unique-for", "1m"}, "producer: --unique puts one item, and stdin holds none; nothing put"},
	}
	var bads []*proc
	for _, b := range bad {
		bads = append(bads, e.startIn(strings.NewReader(b.in+"\n"), "producer", append([]string{"put", "uniq"}, b.args...)...))
	}
	for i, p := range bads {
		p.mustExit(2, exitWait)
		if got := strings.SplitN(p.stderr.String(), "\n", 2)[0]; got != bad[i].says {
			t.Errorf("put %.60q said %q, want %q", bad[i].args, got, bad[i].says)
		}
		if p.stdout.String() != "" {
			t.Errorf("put %.60q printed %q", bad[i].args, p.stdout)
		}
	}

	// The first holds the key for ttl; two more puts are refused meanwhile.
	// The ttl is what the puts and the status calls take at most (a few
	// seconds on a busy machine, more than 6), and what the test waits.
	const ttl = 12 * time.Second
	start := func(text string, extra ...string) *proc {
		args := append([]string{"put", "uniq", "--unique", "report:2026-01-01", "--unique-for", ttl.String()}, extra...)
		return e.startIn(strings.NewReader(`"`+text+`"`+"\n"), "producer", args...)
	}
	put := func(code int, text string, extra ...string) *proc {
		p := start(text, extra...)
		p.mustExit(code, exitWait)
		return p
	}
	t0 := time.Now()
	first := put(0, "first")
	id := strings.TrimSpace(first.stdout.String())
	if !schedIDRE.MatchString(id) {
		t.Fatalf("put --unique printed %q, want the item's id", first.stdout)
	}
	wantLines(t, strings.Split(strings.TrimSpace(first.stderr.String()), "\n"), []string{
		`producer: put 1 item on queue uniq, unique key "report:2026-01-01" held until taken, for ` + ttl.String() + ` at most`})
	dup := `producer: duplicate: unique key "report:2026-01-01" of queue uniq is held by item ` + id + "; nothing put"
	second, strict := start("second"), start("strict", "--strict")
	second.mustExit(0, exitWait)
	strict.mustExit(1, exitWait)
	status, text := e.start("broker", "status", "--json"), e.start("broker", "status")
	status.mustExit(0, exitWait)
	text.mustExit(0, exitWait)
	if time.Since(t0) >= ttl {
		t.Fatalf("the puts within the ttl took %v, longer than the ttl %v: too slow to tell", time.Since(t0), ttl)
	}
	for _, p := range []*proc{second, strict} {
		if p.stdout.String() != "" || strings.TrimSpace(p.stderr.String()) != dup {
			t.Errorf("a put of a held key: stdout %q, stderr %q; want nothing and %q", p.stdout, p.stderr, dup)
		}
	}
	var st ops.Status
	if err := json.Unmarshal([]byte(status.stdout.String()), &st); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, q := range st.MsgQueues {
		if q.Name == "uniq" {
			found = true
			if q.Items != 1 || q.UniqueKeys != 1 || q.Duplicates != 2 {
				t.Errorf("status --json: message queue uniq holds %d items and %d unique keys, %d duplicates refused; want 1, 1, 2",
					q.Items, q.UniqueKeys, q.Duplicates)
			}
		}
	}
	if !found {
		t.Errorf("status --json lists no message queue uniq")
	}
	if !strings.Contains(text.stdout.String(), "\nmessage queue uniq: 1 unique key held, 2 duplicate puts refused\n") {
		t.Errorf("status does not say the unique key held:\n%s", text.stdout)
	}

	// After the ttl: accepted again, not before (the broker's expiry
	// comes within milliseconds; a few tries bound the wait).
	time.Sleep(time.Until(t0.Add(ttl)))
	var third *proc
	for try := 1; ; try++ {
		p := e.startIn(strings.NewReader(`"third"`+"\n"), "producer", "put", "uniq", "--unique", "report:2026-01-01", "--unique-for", ttl.String())
		p.mustExit(0, exitWait)
		if p.stdout.String() != "" {
			third = p
			break
		}
		if try == 10 {
			t.Fatalf("the key is still held %v after the first put, its ttl %v: %s", time.Since(t0), ttl, p.stderr)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if id3 := strings.TrimSpace(third.stdout.String()); !schedIDRE.MatchString(id3) || id3 == id {
		t.Errorf("the put after the ttl printed %q, want a new id", id3)
	}

	// A take releases the key at once: a put of it right after is accepted.
	get := e.start("consumer", "get", "uniq", "-n", "2", "--timeout", "10s")
	get.mustExit(0, exitWait)
	wantLines(t, strings.Fields(get.stdout.String()), []string{`"first"`, `"third"`})
	again := put(0, "again")
	if strings.TrimSpace(again.stdout.String()) == "" {
		t.Errorf("a put right after the holder was taken: %s", again.stderr)
	}
	rest := e.start("consumer", "get", "uniq", "-n", "2", "--timeout", "1s")
	rest.mustExit(1, exitWait)
	if got := rest.stdout.String(); got != "\"again\"\n" {
		t.Errorf("the queue held %q after the two items taken, want only \"again\": the refused and bad puts put something", got)
	}
}

// uniqueTasks: a unique task from Go waits in a queue with no consumer
// and refuses a second Submit of its key, naming its id; status shows the
// key held; a consumer started then runs it once, which releases the key,
// and the next Submit of the key is accepted and runs. A subtest of
// TestScheduleStandalone, on its broker, with a queue of its own.
func uniqueTasks(t *testing.T, e *env) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := e.schedClient(ctx, t)
	pool, err := client.Pool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close(ctx)
	submit := func(text string) (*procq.Task, error) {
		return pool.Submit(ctx, demo.KindMessage, demo.MessageArgs{Text: text}, procq.Unique("rebuild", time.Hour))
	}
	first, err := submit("u1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = submit("u2")
	var de *procq.DuplicateError
	if !errors.As(err, &de) || !errors.Is(err, procq.ErrDuplicate) || de.FirstID != first.ID() {
		t.Fatalf("second Submit: %v, want a duplicate of %s", err, first.ID())
	}
	var st ops.Status
	if err := json.Unmarshal([]byte(e.schedRun(0, "broker", "status", "--json").stdout.String()), &st); err != nil {
		t.Fatal(err)
	}
	if q := statusQueue(st, "uniqtasks"); q == nil || q.Pending != 1 || q.UniqueKeys != 1 || q.Duplicates != 1 {
		t.Errorf("status --json: queue uniqtasks %+v, want 1 pending, 1 unique key, 1 duplicate", q)
	}
	c := e.start("consumer", "--name", "U-1")
	defer c.stop()
	got := func() []string { return pausedGot(c) }
	schedWait(t, 30*time.Second, "the consumer runs u1", func() bool { return len(got()) == 1 })
	var next *procq.Task
	schedWait(t, 10*time.Second, "the key released after u1 succeeded", func() bool {
		next, err = submit("u3")
		return err == nil
	})
	if next.ID() == first.ID() {
		t.Errorf("the second holder has the first's id")
	}
	schedWait(t, 30*time.Second, "the consumer runs u3", func() bool { return len(got()) == 2 })
	time.Sleep(500 * time.Millisecond) // a u2 would show by now
	wantLines(t, got(), []string{"u1", "u3"})
}
