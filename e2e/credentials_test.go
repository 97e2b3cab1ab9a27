package e2e

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/protocol"
)

// procq's clients against the NATS its users operate: a stock nats-server
// from the shipped deploy/nats-server-secure.conf (TLS with a private CA,
// users with permissions that cover procq only), and one in operator mode
// with JWT accounts, whose user procq reaches with a .creds file. Each
// runs the queue and pool demos end to end, its spawned consumers
// presenting the same credential.
func TestStockNATSServerCredentials(t *testing.T) {
	t.Parallel()
	t.Run("TLS and users with permissions", func(t *testing.T) {
		t.Parallel()
		certs := natstest.WriteCerts(t)
		dir := t.TempDir()
		password := randomHex(t)
		shipped, err := os.ReadFile("../deploy/nats-server-secure.conf")
		if err != nil {
			t.Fatal(err)
		}
		conf := substitute(t, string(shipped), []struct{ re, repl string }{
			{`(?m)^listen: 127\.0\.0\.1:4222$`, `listen: 127.0.0.1:-1`},
			{`(?m)^(\s*)cert_file: .*$`, `${1}cert_file: ` + strconv.Quote(certs.Cert)},
			{`(?m)^(\s*)key_file: .*$`, `${1}key_file: ` + strconv.Quote(certs.Key)},
			{`(?m)^(\s*)ca_file: .*$`, `${1}ca_file: ` + strconv.Quote(certs.CA)},
			{`(?m)^(\s*)store_dir: .*$`, `${1}store_dir: ` + strconv.Quote(filepath.Join(dir, "store"))},
			{`"CHANGE-ME-procq"`, strconv.Quote(password)},
			{`"CHANGE-ME-admin"`, strconv.Quote(randomHex(t))},
		})
		url := strings.Replace(runNATSServer(t, dir, conf), "nats://", "tls://", 1)
		world := func(t *testing.T) *env {
			return newEnv(t, url).set("PROCQ_BROKER_EMBEDDED", "false", "PROCQ_BROKER_TLS_CA", certs.CA,
				"PROCQ_BROKER_USER", "procq", "PROCQ_BROKER_PASSWORD", password)
		}
		runFiredTask(t, world)
		runUniqueItem(t, world)
		// The password is in no log of the demos' producers and consumers.
		for _, w := range runDemos(t, world) {
			logs, _ := filepath.Glob(filepath.Join(w.dir, "logs", "*.log"))
			if len(logs) < 3 {
				t.Errorf("%d log files in %s, want the producer's and its consumers'", len(logs), w.dir)
			}
			for _, l := range logs {
				if strings.Contains(string(readFile(t, l)), password) {
					t.Errorf("%s holds the password", l)
				}
			}
		}
		// A wrong password is refused at once, in one line naming the user.
		p := world(t).set("PROCQ_BROKER_PASSWORD", "wrong").start("consumer", "--name", "refused")
		p.mustExit(1, exitWait)
		if msg := strings.TrimSpace(p.stderr.String()); !strings.Contains(msg, "the broker refused broker.user procq and its broker.password") ||
			strings.Contains(msg, "\n") || strings.Contains(msg, "wrong") {
			t.Errorf("wrong password: stderr %q, want one line naming broker.user and no password", msg)
		}
	})
	t.Run("operator mode, a .creds file", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		conf, creds := operatorMode(t, dir)
		url := runNATSServer(t, dir, conf)
		world := func(t *testing.T) *env {
			return newEnv(t, url).set("PROCQ_BROKER_EMBEDDED", "false", "PROCQ_BROKER_CREDS", creds)
		}
		runFiredTask(t, world)
		runUniqueItem(t, world)
		runDemos(t, world)
	})
}

// runUniqueItem puts a unique item twice with the user's credential (the
// second is a duplicate) and takes it, which releases its key: a third
// put is accepted. What PROCQ_UNIQUE needs of the user's permissions.
func runUniqueItem(t *testing.T, world func(t *testing.T) *env) {
	t.Helper()
	e := world(t)
	put := func() *proc {
		p := e.startIn(strings.NewReader("\"u\"\n"), "producer", "put", "unique", "--unique", "k", "--unique-for", "1h")
		p.mustExit(0, exitWait)
		return p
	}
	first, dup := put(), put()
	if first.stdout.String() == "" || dup.stdout.String() != "" || !strings.Contains(dup.stderr.String(), "producer: duplicate: ") {
		t.Errorf("two unique puts: %q / %q, then %q / %q; want an id, then a duplicate", first.stdout, first.stderr, dup.stdout, dup.stderr)
	}
	e.start("consumer", "get", "unique").mustExit(0, exitWait)
	if again := put(); again.stdout.String() == "" {
		t.Errorf("the key was not released by the take: %s", again.stderr)
	}
}

// runFiredTask fires a periodic schedule once with the user's credential
// (broker schedule add, then run) and has a consumer take the task, which
// claims its firing in PROCQ_FIRED: what the user's permissions must
// allow. The consumer retires after that one task (consumers.max_tasks,
// exit 3).
func runFiredTask(t *testing.T, world func(t *testing.T) *env) {
	t.Helper()
	e := world(t).set("PROCQ_QUEUE_NAME", "fired", "PROCQ_CONSUMERS_MAX_TASKS", "1")
	add := e.start("broker", "schedule", "add", "hourly", "--kind", "message", "--args", `{"text":"fired"}`, "--every", "1h")
	add.mustExit(0, exitWait)
	run := e.start("broker", "schedule", "run", "hourly")
	run.mustExit(0, exitWait)
	c := e.start("consumer", "--name", "F-1")
	c.mustExit(protocol.ExitRetired, exitWait)
	if out := c.stdout.String(); !strings.Contains(out, "Consumer F-1: Got 'fired' from queue") {
		t.Errorf("the consumer did not run the fired task:\n%s", out)
	}
}

// runDemos runs the queue demo and a pool map with two spawned consumers
// in worlds from world, and checks their output exactly. It returns the
// worlds, whose logs the caller may read.
func runDemos(t *testing.T, world func(t *testing.T) *env) []*env {
	t.Helper()
	qe, pe := world(t), world(t)
	q := qe.start("producer", "queue")
	q.mustExit(0, exitWait)
	wantQueueDemo(t, q.stdout.String())
	p := pe.start("producer", "pool", "--kind", "square", "--inputs", "1..200", "--processes", "2", "--sleep", "0s")
	p.mustExit(0, exitWait)
	wantSquares(t, p.stdout.String(), 200)
	if sc := sentinelCount(p.stdout.String()); sc["C-1"] != 1 || sc["C-2"] != 1 || len(sc) != 2 {
		t.Errorf("sentinels taken %v, want C-1 and C-2 once each", sc)
	}
	return []*env{qe, pe}
}

// operatorMode makes an operator, a system account, an account with
// JetStream and a user of it, all as JWTs signed in the test (no outside
// tool), and returns a nats-server config that trusts the operator and
// preloads the accounts, and the user's .creds file.
func operatorMode(t *testing.T, dir string) (conf, creds string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	op, err := nkeys.CreateOperator()
	must(err)
	opPub, err := op.PublicKey()
	must(err)
	account := func(name string, js bool) (nkeys.KeyPair, string, string) {
		kp, err := nkeys.CreateAccount()
		must(err)
		pub, err := kp.PublicKey()
		must(err)
		ac := jwt.NewAccountClaims(pub)
		ac.Name = name
		if js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1,
				MaxAckPending: -1, MemoryMaxStreamBytes: -1, DiskMaxStreamBytes: -1}
		}
		token, err := ac.Encode(op)
		must(err)
		return kp, pub, token
	}
	_, sysPub, sysJWT := account("SYS", false)
	acc, accPub, accJWT := account("PROCQ", true)
	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "procq-test"
	oc.SystemAccount = sysPub
	opJWT, err := oc.Encode(op)
	must(err)
	user, err := nkeys.CreateUser()
	must(err)
	userPub, err := user.PublicKey()
	must(err)
	uc := jwt.NewUserClaims(userPub)
	uc.Name = "procq"
	userJWT, err := uc.Encode(acc)
	must(err)
	seed, err := user.Seed()
	must(err)
	b, err := jwt.FormatUserConfig(userJWT, seed)
	must(err)
	creds = filepath.Join(dir, "procq.creds")
	must(os.WriteFile(creds, b, 0o600))
	conf = fmt.Sprintf(`listen: 127.0.0.1:-1
jetstream { store_dir: %q }
operator: %s
system_account: %s
resolver: MEMORY
resolver_preload: {
  %s: %s
  %s: %s
}
`, filepath.Join(dir, "store"), opJWT, sysPub, sysPub, sysJWT, accPub, accJWT)
	return conf, creds
}

// substitute applies each replacement to conf, each matching exactly once.
func substitute(t *testing.T, conf string, subs []struct{ re, repl string }) string {
	t.Helper()
	for _, sub := range subs {
		re := regexp.MustCompile(sub.re)
		if n := len(re.FindAllString(conf, -1)); n != 1 {
			t.Fatalf("config matches %s %d times, want once", sub.re, n)
		}
		conf = re.ReplaceAllString(conf, sub.repl)
	}
	return conf
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// One switch for every listener: with broker.tls's certificate the client
// port requires TLS (the queue demo's producer and spawned consumers
// inherit the client settings), and the metrics, monitoring and dashboard
// endpoints serve HTTPS only, still behind the token.
func TestTLSEverywhere(t *testing.T) {
	t.Parallel()
	certs := natstest.WriteCerts(t)
	e := newEnv(t, "tls://127.0.0.1:0").set("PROCQ_BROKER_EMBEDDED", "false",
		"PROCQ_BROKER_TLS_CERT", certs.Cert, "PROCQ_BROKER_TLS_KEY", certs.Key, "PROCQ_BROKER_TLS_CA", certs.CA,
		"PROCQ_BROKER_METRICS", "127.0.0.1:0", "PROCQ_BROKER_MONITOR", "127.0.0.1:0", "PROCQ_BROKER_UI", "127.0.0.1:0")
	b := e.startBroker()
	q := e.start("producer", "queue")
	q.mustExit(0, exitWait)
	wantQueueDemo(t, q.stdout.String())

	token := strings.TrimSpace(string(readFile(t, filepath.Join(e.dir, "data", "token"))))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(readFile(t, certs.CA))
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	endpointRE := regexp.MustCompile(`Broker: (broker\.\w+) on (\S+)`)
	b.waitOutput(regexp.MustCompile(`Broker: broker\.ui on \S+`), 20*time.Second)
	found := 0
	for _, m := range endpointRE.FindAllStringSubmatch(b.stdout.String(), -1) {
		found++
		key, url := m[1], m[2]
		if !strings.HasPrefix(url, "https://127.0.0.1:") {
			t.Errorf("%s served at %s, want https://", key, url)
			continue
		}
		path := map[string]string{"broker.metrics": "/metrics", "broker.monitor": "/varz", "broker.ui": "/login"}[key]
		req, _ := http.NewRequest(http.MethodGet, url+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("%s over HTTPS: %v", key, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s over HTTPS with the token: %d, want 200", key, resp.StatusCode)
		}
		if resp, err := client.Get(strings.Replace(url, "https://", "http://", 1) + path); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Errorf("%s answered plain HTTP with 200", key)
			}
		}
		noToken, _ := http.NewRequest(http.MethodGet, url+"/metrics", nil)
		if key == "broker.metrics" {
			if resp, err := client.Do(noToken); err != nil || resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("metrics over HTTPS without the token: %v, %v; want 401", resp, err)
			} else {
				resp.Body.Close()
			}
		}
	}
	if found != 3 {
		t.Errorf("%d endpoints announced, want 3:\n%s", found, b.stdout)
	}
}
