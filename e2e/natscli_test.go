package e2e

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// natscli is the nats CLI (github.com/nats-io/natscli, command package
// github.com/nats-io/natscli/nats) the wire-format test runs, named by
// PROCQ_NATSCLI; without it that test is skipped. It is not built here: a
// cold build of natscli v0.5.0 takes over a minute on 2 cores, and as a
// tool dependency of this module it would change the module's own
// dependency versions. Build it once with
//
//	GOBIN=/tmp/natscli go install github.com/nats-io/natscli/nats@v0.5.0
//	PROCQ_NATSCLI=/tmp/natscli/nats go test ./e2e/ -run WireFormatWithNatscli
//
// The variable is read and removed from the environment before any test
// starts, since the processes under test refuse a PROCQ_* variable they
// do not know.
var natscli = func() string {
	v := os.Getenv("PROCQ_NATSCLI")
	os.Unsetenv("PROCQ_NATSCLI")
	return v
}()

// The wire format of a delayed task by hand, as docs/wire-format.md shows
// it: natscli publishes a message schedule on
// procq.sched.at.tasks.demo.work.<run>.<id> with Nats-Schedule "@at <time>",
// Nats-Schedule-Target procq.sched.fire.tasks.demo.work.<run>, Procq-Kind
// and Procq-Task-Id; the consumer runs it once, not before its time and
// within 5 s after.
func schedNatscli(t *testing.T, e *env, c *proc) {
	if natscli == "" {
		t.Skip("PROCQ_NATSCLI does not name a nats CLI (go install github.com/nats-io/natscli/nats@v0.5.0)")
	}
	id := strconv.FormatInt(time.Now().UnixNano(), 10)
	at := time.Now().Add(4 * time.Second).Truncate(time.Second).UTC()
	text := "wire " + id
	server := strings.Replace(e.url(), "nats://", "nats://"+e.schedToken(t)+"@", 1)
	pub := exec.Command(natscli, "--server", server,
		"pub", "procq.sched.at.tasks.demo.work.manual."+id, `{"text":"`+text+`"}`,
		"-H", "Nats-Schedule:@at "+at.Format(time.RFC3339),
		"-H", "Nats-Schedule-Target:procq.sched.fire.tasks.demo.work.manual",
		"-H", "Procq-Kind:message", "-H", "Procq-Task-Id:"+id)
	home := t.TempDir() // no nats contexts of the machine's user
	pub.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home)
	out, err := pub.CombinedOutput()
	if err != nil {
		t.Fatalf("nats pub: %v\n%s", err, out)
	}
	published := time.Now()
	if published.After(at) {
		t.Fatalf("nats pub ended %v after the due time: too slow to tell", published.Sub(at))
	}
	t.Logf("nats pub: %s", strings.TrimSpace(string(out)))

	schedWait(t, 20*time.Second, "the task published with natscli runs", func() bool { return len(schedGot(c, text)) > 0 })
	time.Sleep(time.Second) // room for a second run
	if got := schedGot(c, text); len(got) != 1 || got[0].Before(at) || got[0].After(at.Add(5*time.Second)) {
		t.Errorf("the task due at %s ran at %v, want once within 5 s after", at.Format(time.RFC3339), got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if keys := schedFiredKeys(ctx, t, e.js(t), "demo", id); !slices.Equal(keys, []string{id}) {
		t.Errorf("claims %q, want the task's id %s", keys, id)
	}
}
