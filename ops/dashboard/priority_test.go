package dashboard

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/procq/procq/protocol"
)

// A queue's card shows its pending tasks per priority once it holds
// high- or low-priority ones, and nothing of priorities before.
func TestPriorities(t *testing.T) {
	js := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := NewDashboard(ctx, js, testToken, slog.New(slog.DiscardHandler))
	c := login(t, d)
	page := pageReader(t, ctx, d, c)
	put := func(p protocol.Priority, n int) {
		for range n {
			m := nats.NewMsg(protocol.LevelSubject("dash", "R", p))
			m.Header.Set(protocol.HeaderKind, "report")
			if _, err := js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(protocol.PriorityDefault, 1)
	if body := page(); strings.Contains(body, `class="priorities"`) {
		t.Errorf("default-priority work alone shows priorities:\n%s", body)
	}
	put(protocol.PriorityHigh, 2)
	put(protocol.PriorityLow, 3)
	body := page()
	m := regexp.MustCompile(`<p class="priorities"[^>]*>(.*?)</p>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no priorities on the queue's card:\n%s", body)
	}
	text := strings.Join(strings.Fields(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(m[1], " ")), " ")
	if want := "high 2 default 1 low 3"; text != want {
		t.Errorf("priorities %q, want %q", text, want)
	}
}
