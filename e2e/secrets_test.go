package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/procq/procq"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/ops"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// secretWorld is a test world whose processes share a known secret and
// keep every process they ran, so that the test can look for the secret
// in everything they wrote.
type secretWorld struct {
	*env
	procs []*proc
}

// run starts exe in the world and keeps it for the final check.
func (w *secretWorld) run(exe string, args ...string) *proc {
	w.t.Helper()
	p := w.start(exe, args...)
	w.procs = append(w.procs, p)
	return p
}

// newSecret is a credential no process would print by chance.
func newSecret(t *testing.T, what string) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "procq-" + what + "-" + hex.EncodeToString(b)
}

// noSecret fails when text, from where, holds one of secrets.
func noSecret(t *testing.T, where, text string, secrets map[string]string) {
	t.Helper()
	for name, s := range secrets {
		if i := strings.Index(text, s); i >= 0 {
			t.Errorf("the %s appears in %s: ...%s...", name, where, text[max(0, i-200):min(len(text), i+len(s)+40)])
		}
	}
}

// noSecretInDir fails when a file under dir holds one of secrets.
func noSecretInDir(t *testing.T, dir string, secrets map[string]string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		noSecret(t, path, string(b), secrets)
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	return n
}

var subcommandRE = regexp.MustCompile(`(?m)^  (\S+)\s{2,}\S`)

// helpAll runs "exe args... --help" and, for each subcommand its help
// lists, the subcommand's --help, down the tree; it returns the commands
// it ran.
func (w *secretWorld) helpAll(exe string, args ...string) []string {
	w.t.Helper()
	p := w.run(exe, append(append([]string{}, args...), "--help")...)
	p.mustExit(0, exitWait)
	ran := []string{strings.Join(append([]string{exe}, args...), " ")}
	out := p.stdout.String()
	i := strings.Index(out, "Available Commands:\n")
	if i < 0 {
		return ran
	}
	block, _, _ := strings.Cut(out[i+len("Available Commands:\n"):], "\n\n")
	for _, m := range subcommandRE.FindAllStringSubmatch(block+"\n", -1) {
		if m[1] == "help" || m[1] == "completion" {
			continue
		}
		ran = append(ran, w.helpAll(exe, append(append([]string{}, args...), m[1])...)...)
	}
	return ran
}

// The broker's token (set with PROCQ_BROKER_TOKEN) and the key of its
// store (PROCQ_BROKER_STORE_KEY) appear nowhere a person or a scraper
// reads: not in any log file, not in any process's stdout or stderr (the
// queue demo and a pool map with spawned consumers, broker status and
// --json, broker dead list, show and --json, every executable's and
// subcommand's --help), not in the metrics of the broker and of a
// consumer, nor in the broker's monitoring and dashboard pages. secrets
// is a map so that a user's password (broker.password, for a nats-server
// with users, which the embedded broker is not) can join them once a world
// runs with one.
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	token, storeKey := newSecret(t, "token"), newSecret(t, "storekey")
	secrets := map[string]string{"broker token": token, "broker store key": storeKey}
	w := &secretWorld{env: newEnv(t, anyPort).set("PROCQ_BROKER_TOKEN", token, "PROCQ_BROKER_STORE_KEY", storeKey,
		"PROCQ_BROKER_METRICS", "127.0.0.1:0", "PROCQ_BROKER_MONITOR", "127.0.0.1:0", "PROCQ_BROKER_UI", "127.0.0.1:0",
		"PROCQ_BROKER_EMBEDDED", "false", "PROCQ_QUEUE_NAME", "sec", "PROCQ_LOG_LEVEL", "debug")}
	b := w.startBroker()
	w.procs = append(w.procs, b)
	b.waitOutput(regexp.MustCompile(`Broker: broker\.ui on`), 20*time.Second)
	endpoints := map[string]string{}
	for _, m := range endpointRE.FindAllStringSubmatch(b.stdout.String(), -1) {
		endpoints[m[1]] = m[2]
	}

	// The queue demo and a pool map, each with two spawned consumers,
	// which get the token from their producer.
	q := w.run("producer", "queue")
	q.mustExit(0, exitWait)
	wantQueueDemo(t, q.stdout.String())
	p := w.run("producer", "pool", "--processes", "2", "--kind", "square", "--sleep", "0s",
		"--inputs", "1,2,5000000000,4", "--chunk-size", "1")
	p.mustExit(1, exitWait)
	if !strings.Contains(p.stdout.String(), "square(2) = 4") || !strings.Contains(p.stdout.String(), "overflows") {
		t.Errorf("pool map output:\n%s", p.stdout)
	}

	// A consumer by hand serving its metrics, and a map on it from this
	// process, one input failing, so that its metrics have every label.
	w.set("PROCQ_METRICS_LISTEN", "127.0.0.1:0")
	c := w.run("testconsumer", "--name", "M-1")
	metricsURL := regexp.MustCompile(`metrics on (http://\S+)`).FindStringSubmatch(
		c.waitOutput(regexp.MustCompile(`metrics on http://\S+`), 30*time.Second))[1]
	delete(w.vars, "PROCQ_METRICS_LISTEN")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client, err := procq.Connect(ctx, procq.WithURL(w.url()), procq.WithToken(token), procq.WithQueue("sec"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	pool, err := client.Pool(ctx, procq.ChunkSize(1))
	if err != nil {
		t.Fatal(err)
	}
	_, err = procq.Map[demo.SquareArgs, int64](ctx, pool, demo.KindSquare, []demo.SquareArgs{{X: 3}, {X: 5_000_000_000}})
	var me *procq.MapError
	if !errors.As(err, &me) || len(me.Failed) != 1 {
		t.Errorf("map: %v, want one failed", err)
	}
	pool.Close(ctx)

	// What the operator tools print.
	for _, args := range [][]string{{"status"}, {"status", "--json"}, {"dead", "list"}, {"dead", "list", "--json"}} {
		s := w.run("broker", args...)
		s.mustExit(0, exitWait)
	}
	dl := w.run("broker", "dead", "list", "--queue", "sec", "--json")
	dl.mustExit(0, exitWait)
	var dls []ops.DeadLetter
	if err := json.Unmarshal([]byte(dl.stdout.String()), &dls); err != nil || len(dls) < 2 {
		t.Errorf("dead list --json: %v, %d dead letters, want the two overflows\n%s", err, len(dls), dl.stdout)
	}
	for _, d := range dls {
		w.run("broker", "dead", "show", strconv.FormatUint(d.ID, 10)).mustExit(0, exitWait)
	}

	// Every --help, down the command tree.
	var helps []string
	for _, exe := range []string{"broker", "producer", "consumer", "testconsumer"} {
		helps = append(helps, w.helpAll(exe)...)
	}
	if len(helps) < 12 {
		t.Errorf("ran --help of only %q", helps)
	}

	// The endpoints, read with the token, do not echo it.
	for _, url := range []string{endpoints["broker.metrics"] + "/metrics", metricsURL,
		endpoints["broker.monitor"] + "/varz", endpoints["broker.monitor"] + "/connz?auth=true&subs=true",
		endpoints["broker.monitor"] + "/jsz?config=true", endpoints["broker.ui"] + "/",
		endpoints["broker.ui"] + "/body", endpoints["broker.ui"] + "/api/status"} {
		code, body := get(t, url, token)
		if code != http.StatusOK {
			t.Errorf("%s: %d", url, code)
		}
		if strings.Contains(url, "metrics") && !strings.Contains(body, "procq_") {
			t.Errorf("%s has no procq metric:\n%.300s", url, body)
		}
		noSecret(t, url, body, secrets)
	}

	c.stop()
	b.stop()
	n := noSecretInDir(t, filepath.Join(w.dir, "logs"), secrets)
	if n < 7 { // broker, producer, consumer-C-1, -C-2, -M-1, broker-status, broker-dead
		t.Errorf("only %d log files in %s", n, filepath.Join(w.dir, "logs"))
	}
	for _, p := range w.procs {
		noSecret(t, p.name+" stdout", p.stdout.String(), secrets)
		noSecret(t, p.name+" stderr", p.stderr.String(), secrets)
	}
}

// "broker status" and "broker dead" with no broker at broker.url give up
// after --wait (5s unless told), not broker.connect_timeout (20s in this
// world), and exit 1 with one line naming broker.url; a token in the URL
// is left out of that line.
func TestStatusWithoutBrokerWaitsOnlyWait(t *testing.T) {
	t.Parallel()
	token := newSecret(t, "token")
	secrets := map[string]string{"broker token": token}
	e := newEnv(t, fixedURL(t)).set("PROCQ_BROKER_TOKEN", token)

	start := time.Now()
	s := e.start("broker", "status")
	if code := s.wait(60 * time.Second); code != 1 {
		t.Errorf("broker status exited %d, want 1\nstderr:\n%s", code, s.stderr)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("broker status took %v with no broker, want about --wait (5s)", took)
	}
	want := "broker: no broker answered at broker.url " + e.url() + " within 5s (--wait): "
	if got := s.stderr.String(); !strings.HasPrefix(got, want) || strings.Count(got, "\n") != 1 {
		t.Errorf("stderr %q, want one line starting %q", got, want)
	}
	if s.stdout.String() != "" {
		t.Errorf("stdout %q, want nothing", s.stdout)
	}

	d := e.start("broker", "dead", "list", "--wait", "1s")
	if code := d.wait(60 * time.Second); code != 1 {
		t.Errorf("broker dead list exited %d, want 1", code)
	}
	if got := d.stderr.String(); !strings.Contains(got, "broker.url "+e.url()+" within 1s (--wait)") {
		t.Errorf("broker dead list --wait 1s said %q", got)
	}

	bad := e.start("broker", "status", "--wait", "0s")
	if code := bad.wait(60 * time.Second); code != 2 || !strings.Contains(bad.stderr.String(), "--wait must be positive") {
		t.Errorf("--wait 0s: exit %d, %q; want 2 and a usage error", code, bad.stderr)
	}

	// A token given in broker.url's user info is not printed back.
	inURL := strings.Replace(e.url(), "nats://", "nats://"+token+"@", 1)
	u := e.start("broker", "status", "--url", inURL, "--wait", "1s")
	if code := u.wait(60 * time.Second); code != 1 {
		t.Errorf("broker status --url with a token exited %d, want 1", code)
	}
	if got := u.stderr.String(); !strings.Contains(got, strings.Replace(e.url(), "nats://", "nats://redacted@", 1)) {
		t.Errorf("stderr %q does not name broker.url with its user info redacted", got)
	}
	for _, p := range []*proc{s, d, bad, u} {
		noSecret(t, p.name+" stdout", p.stdout.String(), secrets)
		noSecret(t, p.name+" stderr", p.stderr.String(), secrets)
	}
}

// Text from a dead letter reaches the terminal with its escape sequences
// and bidi controls made visible: a handler whose error is its input, and
// a task of an unknown kind whose body and headers carry them, both
// dead-lettered by a real consumer, then "broker dead list" and "show":
// no ESC, BEL or bidi override on stdout, their escapes instead; --json
// keeps the exact text, escaped the JSON way.
func TestDeadLettersShowNoTerminalControls(t *testing.T) {
	t.Parallel()
	e := newEnv(t, anyPort).set("PROCQ_BROKER_EMBEDDED", "false", "PROCQ_QUEUE_NAME", "esc")
	e.startBroker()
	tok, err := os.ReadFile(filepath.Join(e.dir, "data", "token"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	client, err := procq.Connect(ctx, procq.WithURL(e.url()), procq.WithToken(strings.TrimSpace(string(tok))), procq.WithQueue("esc"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)

	// A consumer (this process) with a kind that fails with its input as
	// its error, as a user's handler may.
	reg := task.NewRegistry()
	task.MustRegister(reg, "echoerr", func(_ context.Context, s string) (string, error) { return "", errors.New(s) })
	worker, err := client.Worker(reg, procq.WorkerName("E-1"))
	if err != nil {
		t.Fatal(err)
	}
	wctx, stopWorker := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- worker.Run(wctx) }()
	t.Cleanup(func() { stopWorker(); <-ran })

	const evil = "boom \x1b]0;pwned\x07\x1b[2J \u202eevil\u2066"
	arg, _ := json.Marshal(evil)
	subject := protocol.WorkSubject("esc", "controls")
	msgs := []*nats.Msg{
		{Subject: subject, Data: arg, Header: nats.Header{protocol.HeaderKind: {"echoerr"}}},
		{Subject: subject, Data: []byte(evil + "\nline two\ttabbed"),
			Header: nats.Header{protocol.HeaderKind: {"nope"}, "Procq-Note": {"\x1b[31mred\u202e"}}},
	}
	for _, m := range msgs {
		for { // the stream exists once the worker has declared the queue
			if _, err = client.JetStream().PublishMsg(ctx, m); err == nil || ctx.Err() != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	var dls []ops.DeadLetter
	var listJSON *proc
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		listJSON = e.start("broker", "dead", "list", "--json")
		listJSON.mustExit(0, exitWait)
		dls = nil
		if err := json.Unmarshal([]byte(listJSON.stdout.String()), &dls); err != nil {
			t.Fatalf("dead list --json: %v\n%s", err, listJSON.stdout)
		}
		if len(dls) == 2 || time.Now().After(deadline) {
			break
		}
	}
	byKind := map[string]ops.DeadLetter{}
	for _, d := range dls {
		byKind[d.Kind] = d
	}
	if len(dls) != 2 || byKind["echoerr"].Reason != "input 0 of the message: "+evil || byKind["nope"].ID == 0 {
		t.Fatalf("dead letters %+v, want echoerr's with its input as the reason, and nope's", dls)
	}

	// Nothing that drives a terminal, in any output; the escapes instead.
	controls := []string{"\x1b", "\x07", "\u202e", "\u2066"}
	clean := func(p *proc, want ...string) {
		t.Helper()
		out := p.stdout.String()
		for _, c := range controls {
			if strings.Contains(out, c) {
				t.Errorf("%s prints %q raw:\n%q", p.name, c, out)
			}
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s does not print %q:\n%s", p.name, w, out)
			}
		}
	}
	const shown = `boom \x1b]0;pwned\a\x1b[2J \u202eevil\u2066`
	clean(listJSON, `boom \u001b]0;pwned\u0007\u001b[2J \u202eevil\u2066`)

	list := e.start("broker", "dead", "list")
	list.mustExit(0, exitWait)
	clean(list, "input 0 of the message: "+shown, "2 dead letters")

	show := e.start("broker", "dead", "show", strconv.FormatUint(byKind["echoerr"].ID, 10))
	show.mustExit(0, exitWait)
	clean(show, "Reason: input 0 of the message: "+shown+"\n", "Body (", `"boom \u001b]0;pwned`)

	show = e.start("broker", "dead", "show", strconv.FormatUint(byKind["nope"].ID, 10))
	show.mustExit(0, exitWait)
	clean(show, "\n  Procq-Note: \\x1b[31mred\\u202e\n", "Body ("+strconv.Itoa(len(msgs[1].Data))+" bytes):\n"+shown+"\nline two\ttabbed\n")

	showJSON := e.start("broker", "dead", "show", "--json", strconv.FormatUint(byKind["nope"].ID, 10))
	showJSON.mustExit(0, exitWait)
	clean(showJSON)
	var got ops.DeadLetter
	if err := json.Unmarshal([]byte(showJSON.stdout.String()), &got); err != nil {
		t.Fatalf("dead show --json: %v\n%s", err, showJSON.stdout)
	}
	if got.Body != string(msgs[1].Data) || got.Header.Get("Procq-Note") != "\x1b[31mred\u202e" {
		t.Errorf("dead show --json changed the text: body %q, note %q", got.Body, got.Header.Get("Procq-Note"))
	}

	status := e.start("broker", "status")
	status.mustExit(0, exitWait)
	clean(status, "E-1")
}

// A token given as broker.url's user info (nats://TOKEN@host:port, which
// nats.go presents as the token) appears in no log file and no output of
// a client that connects with it.
func TestSecretsTokenInURLNeverShown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, anyPort).set("PROCQ_BROKER_EMBEDDED", "false")
	e.startBroker()
	tok, err := os.ReadFile(filepath.Join(e.dir, "data", "token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	secrets := map[string]string{"broker token": token}
	inURL := strings.Replace(e.url(), "nats://", "nats://"+token+"@", 1)
	e.set("PROCQ_BROKER_URL", inURL, "PROCQ_BROKER_TOKEN_FILE", filepath.Join(e.dir, "none"))
	var procs []*proc
	for _, args := range [][]string{{"producer", "queue"}, {"broker", "status"}, {"broker", "dead", "list"}} {
		p := e.start(args[0], args[1:]...)
		p.mustExit(0, exitWait)
		procs = append(procs, p)
	}
	for _, p := range procs {
		noSecret(t, p.name+" stdout", p.stdout.String(), secrets)
		noSecret(t, p.name+" stderr", p.stderr.String(), secrets)
	}
	noSecretInDir(t, filepath.Join(e.dir, "logs"), secrets)
}
