package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"

	"github.com/procq/procq"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/ops"
	"github.com/procq/procq/protocol"
)

var noProgressRE = regexp.MustCompile(`(^|\s)0 of `)

// browser finds headless Chromium (Debian's chromium; .ci/run installs it).
func browser(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium found (apt-get install chromium): the dashboard's browser test is skipped")
	return ""
}

// dashboard drives the dashboard in headless Chromium: refused without the
// token, logged in with it, the queue, both consumers, a map in progress
// and a dead letter in the page; Requeue takes the dead letter off the
// list. The screenshot goes to $DASHBOARD_SCREENSHOT (the image in
// docs/operations.md) or the test's temp dir.
func (w *opsWorld) dashboard(t *testing.T) {
	exe := browser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Without the token: refused, with the login form and no data.
	code, body := get(t, w.ui+"/", "")
	if code != http.StatusUnauthorized || !strings.Contains(body, `name="token"`) || strings.Contains(body, "Queues") {
		t.Fatalf("dashboard without the token: %d\n%.300s", code, body)
	}

	// A dead letter to requeue: firsttry fails on its first run only.
	marker := filepath.Join(w.e.dir, "dashboard.marker")
	msg := &nats.Msg{Subject: protocol.WorkSubject("ops", "dash"), Data: []byte(fmt.Sprintf(`{"marker":%q}`, marker)),
		Header: nats.Header{protocol.HeaderKind: {"firsttry"}}}
	if _, err := w.client.JetStream().PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	st := w.waitStatus(t, "the dead letter", func(st ops.Status) bool { return queueOf(st, "ops").Dead == 1 })
	_ = st
	d, err := ops.OpenDeadLetters(ctx, w.client.JetStream())
	if err != nil {
		t.Fatal(err)
	}
	dls, err := d.List(ctx, "ops")
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters %v, %v; want 1", dls, err)
	}
	id := strconv.FormatUint(dls[0].ID, 10)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.WindowSize(1400, 1000), chromedp.Flag("headless", "new"))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	err = chromedp.Do(bctx,
		chromedp.Navigate(w.ui+"/"),
		chromedp.WaitVisible(`input[name="token"]`),
		chromedp.SendKeys(`input[name="token"]`, w.token),
		chromedp.Submit(`input[name="token"]`),
		chromedp.WaitVisible(`.queue[data-queue="ops"]`),
		chromedp.WaitVisible(`.consumer[data-name="C-1"]`),
		chromedp.WaitVisible(`.consumer[data-name="C-2"]`),
		chromedp.WaitVisible(`.deadletter[data-id="`+id+`"]`),
	)
	if err != nil {
		t.Fatalf("dashboard: %v", err)
	}

	// Then a map while the page is up (started once the browser runs, so
	// that a slow start cannot outlast it): slow squares on both
	// consumers.
	pool, err := w.client.Pool(ctx, procq.ChunkSize(1))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close(ctx)
	args := make([]demo.SquareArgs, 80)
	for i := range args {
		args[i] = demo.SquareArgs{X: int64(i), Sleep: "200ms"} // about 8 s on the two consumers
	}
	m := procq.MapAsync[demo.SquareArgs, int64](ctx, pool, demo.KindSquare, args, nil, nil)
	defer func() {
		if _, err := m.Get(ctx); err != nil {
			t.Errorf("the map behind the screenshot: %v", err)
		}
	}()

	err = chromedp.Do(bctx,
		chromedp.WaitVisible(`tr.map`),
		chromedp.WaitVisible(`.busy`), // a consumer running a task, refreshed by the live stream
	)
	if err != nil {
		t.Fatalf("dashboard during the map: %v", err)
	}
	// For the screenshot: a few seconds of the live page, so that the
	// sparkline has a history and the map's lease shows progress.
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		qctx, qcancel := context.WithTimeout(bctx, time.Second) // a query waits for its element otherwise
		points, _ := chromedp.Run(qctx, chromedp.AttributeValue(`.queue[data-queue="ops"] polyline`, "points"))
		progress, _ := chromedp.Run(qctx, chromedp.Text(`tr.map`))
		qcancel()
		if len(strings.Fields(points.Value)) >= 4 && !noProgressRE.MatchString(progress) {
			break
		}
	}
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	out := os.Getenv("DASHBOARD_SCREENSHOT")
	if out == "" {
		out = filepath.Join(t.TempDir(), "dashboard.png")
	}
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", out, len(shot))

	// Requeue: the task runs again, succeeds, and the row leaves the list.
	err = chromedp.Do(bctx,
		chromedp.Click(`.deadletter[data-id="`+id+`"] button.requeue`),
		chromedp.WaitVisible(`#flash`),
	)
	if err != nil {
		t.Fatalf("requeue in the dashboard: %v", err)
	}
	flash, err := chromedp.Run(bctx, chromedp.Text(`#flash`))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.WaitNotPresent(`.deadletter[data-id="`+id+`"]`)); err != nil {
		t.Fatalf("the requeued dead letter stays in the list: %v", err)
	}
	if !strings.Contains(flash, "Dead letter "+id+" requeued as task") {
		t.Errorf("flash %q", flash)
	}
	w.waitStatus(t, "no dead letter and the requeued task run", func(st ops.Status) bool {
		q := queueOf(st, "ops")
		return q.Dead == 0 && q.Pending == 0
	})
}
