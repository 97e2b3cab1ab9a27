package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Any NATS client can submit work by following docs/wire-format.md: a
// task published by hand (plain nats.go, none of procq's packages) is run
// by a consumer process, its result lands on the reply subject, and a
// message of an unknown kind is dead-lettered while the consumer goes on.
func TestWireFormatByHand(t *testing.T) {
	t.Parallel()
	e := newEnv(t, anyPort)
	b := e.startBroker()
	url := e.url()
	c := e.start("consumer", "--name", "C-1")
	token, err := os.ReadFile(filepath.Join(e.dir, "data", "token"))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, nats.Token(strings.TrimSpace(string(token))))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The consumer declares the streams when it starts.
	var results jetstream.Stream
	for results == nil {
		if results, err = js.Stream(ctx, "PROCQ_RESULTS"); err != nil {
			results = nil
			if ctx.Err() != nil {
				t.Fatal("no PROCQ_RESULTS stream")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	publish := func(kind, index, body string) {
		m := nats.NewMsg("procq.tasks.demo.work.manual")
		m.Header.Set("Procq-Kind", kind)
		m.Header.Set("Procq-Run", "manual")
		m.Header.Set("Procq-Index", index)
		m.Header.Set("Procq-Reply", "procq.results.manual")
		m.Data = []byte(body)
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	publish("nope", "0", `{}`)
	publish("square", "1", `{"x":7}`)

	var got []string
	for len(got) < 2 && ctx.Err() == nil {
		info, err := results.Info(ctx, jetstream.WithSubjectFilter("procq.results.manual"))
		if err != nil || info.State.Msgs < 2 {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
			m, err := results.GetMsg(ctx, seq)
			if err == nil && m.Subject == "procq.results.manual" {
				got = append(got, string(m.Data))
			}
		}
	}
	want := []string{
		`[{"index":0,"outcomes":[{"error":"unknown task kind: \"nope\""}]}]`,
		`[{"index":1,"results":[49]}]`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("result bodies:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	dead, err := js.Stream(ctx, "PROCQ_DEAD")
	if err != nil {
		t.Fatal(err)
	}
	dl, err := dead.GetLastMsgForSubject(ctx, "procq.dead.demo")
	if err != nil {
		t.Fatalf("no dead letter: %v", err)
	}
	var body map[string]any
	if json.Unmarshal(dl.Data, &body) != nil || dl.Header.Get("Procq-Kind") != "nope" ||
		dl.Header.Get("Procq-Error") != `unknown task kind: "nope"` || dl.Header.Get("Procq-Subject") != "procq.tasks.demo.work.manual" {
		t.Errorf("dead letter %v %s", dl.Header, dl.Data)
	}
	c.stop()
	b.stop()
}
