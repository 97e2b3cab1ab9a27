package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"

	"github.com/procq/procq"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/ops"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/schedule"
)

var noProgressRE = regexp.MustCompile(`(^|\s)0 of `)

// ranRE matches a sparkline's points with a sample above zero (y 27.0 is
// none).
var ranRE = regexp.MustCompile(`,([0-9]|1[0-9]|2[0-6])\.\d `)

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

// sessionCookie is the dashboard's login cookie (ops/dashboard.SessionCookie).
const sessionCookie = "procq_session"

// xssMarkup is what a dead letter's kind, reason and body hold in the XSS
// check: the page must show it as text and run none of it.
const xssMarkup = `<script>window.__xss=1</script><img src=x onerror="window.__xss=2">`

// dashboard drives the dashboard in headless Chromium: refused without the
// token, logged in with it, the queue, both consumers, a map in progress,
// a dead letter, two periodic schedules and a delayed task in the page;
// Requeue takes the dead letter off the list, Cancel the delayed task
// (and out of PROCQ_SCHED), Pause on a queue's card pauses it until
// resumed (the card says so) and Resume ends that. On the way: markup in a dead letter shows as text and runs
// nothing; the login cookie is a random HttpOnly, SameSite=Strict session
// id, never the token; a page of another web server on another port of
// 127.0.0.1 (which receives the browser's cookies for 127.0.0.1, as every
// port does) cannot requeue a dead letter, and never sees the token;
// neither can a request without the session's CSRF token or from another
// origin; logout revokes the session. The screenshot goes to
// $DASHBOARD_SCREENSHOT (the image in docs/operations.md) or the test's
// temp dir; it shows a second queue, "reports", paused for an hour.
func (w *opsWorld) dashboard(t *testing.T) {
	exe := browser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
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
	w.waitStatus(t, "the dead letter", func(st ops.Status) bool { return queueOf(st, "ops").Dead == 1 })
	d, err := ops.OpenDeadLetters(ctx, w.client.JetStream())
	if err != nil {
		t.Fatal(err)
	}
	dls, err := d.List(ctx, "ops")
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters %v, %v; want 1", dls, err)
	}
	id := strconv.FormatUint(dls[0].ID, 10)

	// A dead letter of markup, straight into the dead-letter stream (queue
	// "xss", which no consumer serves): its kind, error and body.
	ack, err := w.client.JetStream().PublishMsg(ctx, &nats.Msg{Subject: protocol.DeadSubject("xss"), Data: []byte("body " + xssMarkup),
		Header: nats.Header{protocol.HeaderKind: {xssMarkup}, protocol.HeaderError: {"error " + xssMarkup}}})
	if err != nil {
		t.Fatal(err)
	}
	xssID := strconv.FormatUint(ack.Sequence, 10)

	// A message queue with 2 of its 5 items: the dashboard lists it.
	mq, err := w.client.Queue(ctx, "dashq", 5)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := procq.Put(ctx, mq, i); err != nil {
			t.Fatal(err)
		}
	}

	// Tasks in time, none due while the test runs: a delayed item of
	// dashq, a delayed task put as any NATS client puts one (the wire
	// format), and two periodic schedules of queue ops (squares: one that
	// fired anyway would only run).
	later, err := procq.Put(ctx, mq, 2, procq.In(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer later.Cancel(ctx)
	msg = &nats.Msg{Subject: protocol.WorkSubject("ops", "dash"), Data: []byte(`{"x":7}`),
		Header: nats.Header{protocol.HeaderKind: {demo.KindSquare}}}
	delayed := schedule.Delay(msg, time.Now().Add(time.Hour))
	if _, err := w.client.JetStream().PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		name string
		when procq.When
	}{
		{"hourly-square", procq.Every(time.Hour)},
		{"nightly-square", procq.Cron("0 0 2 * * *").InZone("Europe/Berlin")},
	} {
		if err := w.client.Schedule(ctx, s.name, demo.KindSquare, demo.SquareArgs{X: 3}, s.when); err != nil {
			t.Fatal(err)
		}
		defer w.client.Unschedule(ctx, s.name)
	}

	// A second task queue, which no consumer serves: its card's Pause and
	// Resume are clicked below, and it is paused in the screenshot.
	qc := w.client.Config().QueueShape()
	qc.Name = "reports"
	if _, err := protocol.EnsureQueue(ctx, w.client.JetStream(), qc); err != nil {
		t.Fatal(err)
	}
	defer w.client.ResumeQueue(context.Background(), "reports")

	// Another web app on another port of 127.0.0.1: it records what the
	// browser sends it, and serves a page that tries to requeue the dead
	// letter in the dashboard.
	other := newOtherSite(t, w.ui+"/dead/"+id+"/requeue")

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
		chromedp.WaitVisible(`.queue[data-queue="reports"] button.pause`),
		chromedp.WaitVisible(`.consumer[data-name="C-1"]`),
		chromedp.WaitVisible(`.consumer[data-name="C-2"]`),
		chromedp.WaitVisible(`.deadletter[data-id="`+id+`"]`),
		chromedp.WaitVisible(`.deadletter[data-id="`+xssID+`"]`),
		chromedp.WaitVisible(`.msgqueue[data-name="dashq"]`),
		chromedp.WaitVisible(`.schedule[data-name="hourly-square"]`),
		chromedp.WaitVisible(`.schedule[data-name="nightly-square"]`),
		chromedp.WaitVisible(`.delayedtask[data-id="`+delayed.ID+`"]`),
		chromedp.WaitVisible(`.delayedtask[data-id="`+later.ID()+`"]`),
	)
	if err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	mqRow, err := chromedp.Run(bctx, chromedp.Evaluate[string](innerText(`.msgqueue[data-name="dashq"]`)))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(mqRow); !slices.Equal(got, []string{"dashq", "2", "5", "1"}) {
		t.Errorf("the dashboard shows the message queue as %q, want dashq with 2 of 5 items and 1 scheduled", got)
	}
	t.Run("schedules and delayed tasks", func(t *testing.T) {
		for sel, want := range map[string]*regexp.Regexp{
			`.queue[data-queue="ops"] dd.scheduled`:      regexp.MustCompile(`^1$`),
			`.queue[data-queue="ops"] dd.schedules`:      regexp.MustCompile(`^2$`),
			`.schedule[data-name="hourly-square"]`:       regexp.MustCompile(`^hourly-square ops square every 1h0m0s \d{4}-\d\d-\d\d \d\d:\d\d:\d\d in (59m\d\ds|1h00m)$`),
			`.schedule[data-name="nightly-square"]`:      regexp.MustCompile(`^nightly-square ops square cron 0 0 2 \* \* \* in Europe/Berlin \d{4}-\d\d-\d\d \d\d:\d\d:00 (in \d+h\d\dm|in \d+m\d\ds|in \d+s|now)$`),
			`.delayedtask[data-id="` + delayed.ID + `"]`: regexp.MustCompile(`^` + delayed.ID + ` ops square \d{4}-\d\d-\d\d \d\d:\d\d:\d\d in 59m\d\ds Cancel$`),
			`.delayedtask[data-id="` + later.ID() + `"]`: regexp.MustCompile(`^` + later.ID() + ` dashq item \d{4}-\d\d-\d\d \d\d:\d\d:\d\d in 59m\d\ds Cancel$`),
		} {
			text, err := chromedp.Run(bctx, chromedp.Evaluate[string](innerText(sel)))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(strings.Fields(text), " "); !want.MatchString(got) {
				t.Errorf("%s shows %q, want it to match %s", sel, got, want)
			}
		}
	})

	t.Run("markup in a dead letter shows as text", func(t *testing.T) {
		// Once as the page came, once more after the live stream swapped
		// the body in (innerHTML: an <img onerror> would run there).
		for _, when := range []string{"in the page", "after a live update"} {
			if when == "after a live update" {
				err := chromedp.Do(bctx,
					chromedp.Evaluate[chromedp.Void](`document.getElementById("live").appendChild(document.createElement("i")).id = "stale"`),
					chromedp.Poll[chromedp.Void](`document.getElementById("stale") === null`, chromedp.WithPollingTimeout(10*time.Second)),
				)
				if err != nil {
					t.Fatalf("no live update: %v", err)
				}
			}
			got, err := chromedp.Run(bctx, chromedp.Evaluate[xssView](`(() => {
				const tr = document.querySelector('tr.deadletter[data-id="`+xssID+`"]');
				return {Kind: tr.children[2].textContent, Reason: tr.querySelector(".reason").textContent,
					Title: tr.querySelector(".reason").title, XSS: typeof window.__xss,
					Tags: document.querySelectorAll("#live script, #live img").length};
			})()`))
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			if got.Kind != xssMarkup || got.Reason != "error "+xssMarkup || got.Title != "error "+xssMarkup {
				t.Errorf("%s: kind %q, reason %q, title %q; want the markup as text", when, got.Kind, got.Reason, got.Title)
			}
			if got.XSS != "undefined" || got.Tags != 0 {
				t.Errorf("%s: typeof window.__xss is %q, %d script or img elements in the page; want undefined, 0", when, got.XSS, got.Tags)
			}
		}
	})
	// Off the page before the screenshot.
	if st, err := w.client.JetStream().Stream(ctx, protocol.DeadStream); err != nil {
		t.Fatal(err)
	} else if err := st.DeleteMsg(ctx, ack.Sequence); err != nil {
		t.Fatal(err)
	}

	// The session cookie, as the browser keeps it.
	var session *network.Cookie
	t.Run("the login cookie is a session id, not the token", func(t *testing.T) {
		res, err := chromedp.Call(bctx, network.GetCookies, network.GetCookiesParams{URLs: []string{w.ui + "/"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range res.Cookies {
			if strings.Contains(c.Value, w.token) {
				t.Errorf("cookie %s holds the token", c.Name)
			}
			if c.Name == sessionCookie {
				session = c
			}
		}
		if session == nil {
			t.Fatalf("no %s cookie after login: %+v", sessionCookie, res.Cookies)
		}
		if session.Value == "" || session.Value == w.token || strings.Contains(session.Value, w.token) || len(session.Value) != 43 {
			t.Errorf("session cookie value %q: want 32 random bytes base64url, not the token", session.Value)
		}
		if !session.HTTPOnly || session.SameSite != network.CookieSameSiteStrict || session.Path != "/" || session.Secure {
			t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/, not Secure over plain HTTP", session)
		}
		jsCookies, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.cookie`))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(jsCookies, sessionCookie) || strings.Contains(jsCookies, session.Value) || strings.Contains(jsCookies, w.token) {
			t.Errorf("document.cookie shows the session: %q", jsCookies)
		}
	})
	if session == nil {
		t.FailNow()
	}

	t.Run("a requeue without the CSRF token or from another origin is refused", func(t *testing.T) {
		csrf, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector('.deadletter[data-id="`+id+`"] input[name="csrf"]').value`))
		if err != nil || csrf == "" || csrf == session.Value {
			t.Fatalf("the page's CSRF token %q, %v", csrf, err)
		}
		target := "/dead/" + id + "/requeue"
		for _, tt := range []struct {
			name         string
			csrf, origin string
		}{
			{"the session cookie, without the CSRF token", "", w.ui},
			{"the session cookie and CSRF token, from another origin", csrf, other.URL},
			{"the session cookie and CSRF token, naming no origin", csrf, ""},
		} {
			h := http.Header{"Cookie": {sessionCookie + "=" + session.Value}}
			if tt.origin != "" {
				h.Set("Origin", tt.origin)
			}
			if code, body := w.send(t, target, url.Values{"csrf": {tt.csrf}}, h); code != http.StatusForbidden {
				t.Errorf("%s: %d, want 403\n%.200s", tt.name, code, body)
			}
		}
		// A login posted from another origin, with the right token.
		if code, _ := w.send(t, "/login", url.Values{"token": {w.token}}, http.Header{"Origin": {other.URL}}); code != http.StatusForbidden {
			t.Errorf("login from another origin: %d, want 403", code)
		}
		if !slices.Contains(w.deadIDs(t), id) {
			t.Errorf("dead letter %s is gone after the refused requeues", id)
		}
	})

	t.Run("a page on another port can neither requeue nor see the token", func(t *testing.T) {
		// Every response the browser gets for the requeue URL, redirects
		// included.
		var mu sync.Mutex
		var statuses []int64
		lctx, lcancel := context.WithCancel(bctx)
		defer lcancel()
		if err := chromedp.Listen(lctx, func(ev any) {
			mu.Lock()
			defer mu.Unlock()
			switch e := ev.(type) {
			case *network.EventResponseReceived:
				if e.Response.URL == other.target {
					statuses = append(statuses, e.Response.Status)
				}
			case *network.EventRequestWillBeSent:
				if e.RedirectResponse != nil && e.RedirectResponse.URL == other.target {
					statuses = append(statuses, e.RedirectResponse.Status)
				}
			}
		}); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(bctx, chromedp.Navigate(other.URL+"/attack")); err != nil {
			t.Fatal(err)
		}
		// Its fetch, then its form.
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			mu.Lock()
			n := len(statuses)
			mu.Unlock()
			if n >= 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the other page's two requeues were not answered within 20s (%d were)", n)
			}
		}
		mu.Lock()
		got := slices.Clone(statuses)
		mu.Unlock()
		// 403, not 401: the browser did send the session cookie along.
		if len(got) != 2 || got[0] != http.StatusForbidden || got[1] != http.StatusForbidden {
			t.Errorf("the other page's requeues (fetch, form) got %v, want [403 403]", got)
		}
		if !slices.Contains(w.deadIDs(t), id) {
			t.Errorf("the other page requeued dead letter %s", id)
		}
		seen := other.seen()
		if len(seen) < 2 || !strings.Contains(strings.Join(seen, "\n"), sessionCookie+"=") {
			t.Errorf("the other site got %d requests, without the session cookie: the check below proves nothing\n%s", len(seen), strings.Join(seen, "\n"))
		}
		for _, req := range seen {
			if strings.Contains(req, w.token) {
				t.Errorf("the other site received the token:\n%s", req)
			}
		}
		wctx, wcancel := context.WithTimeout(bctx, 15*time.Second)
		defer wcancel()
		err := chromedp.Do(wctx,
			chromedp.Navigate(w.ui+"/"),
			chromedp.WaitVisible(`.deadletter[data-id="`+id+`"]`),
		)
		if err != nil {
			t.Fatalf("back in the dashboard: %v", err)
		}
	})

	t.Run("a script logs in with the token and out (SECURITY.md)", func(t *testing.T) {
		// curl -c jar --data-urlencode token@data/jetstream/token .../login
		code, _, cookies := w.sendFull(t, "/login", url.Values{"token": {w.token + "\n"}}, nil)
		var sid string
		for _, c := range cookies {
			if c.Name == sessionCookie {
				sid = c.Value
			}
		}
		if code != http.StatusSeeOther || sid == "" || strings.Contains(sid, w.token) {
			t.Fatalf("login: %d, session %q", code, sid)
		}
		jar := http.Header{"Cookie": {sessionCookie + "=" + sid}}
		code, page := w.fetch(t, "/", jar)
		m := regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`).FindStringSubmatch(page)
		if code != http.StatusOK || !strings.Contains(page, "Queues") || m == nil {
			t.Fatalf("the dashboard with the session: %d\n%.300s", code, page)
		}
		if code, _ := w.fetch(t, "/api/status", jar); code != http.StatusOK {
			t.Errorf("/api/status with the session: %d", code)
		}
		jar.Set("Origin", w.ui)
		if code, _ := w.send(t, "/logout", url.Values{"csrf": {m[1]}}, jar); code != http.StatusSeeOther {
			t.Fatalf("logout: %d", code)
		}
		jar.Del("Origin")
		if code, page := w.fetch(t, "/", jar); code != http.StatusUnauthorized || !strings.Contains(page, `name="token"`) || strings.Contains(page, "Queues") {
			t.Errorf("the dashboard after logout: %d, want 401 and the login form", code)
		}
	})

	t.Run("pause and resume a queue", func(t *testing.T) {
		card := `.queue[data-queue="reports"]`
		// Pause, the button held down while a live update arrives: the
		// update waits for the release, so the button stays and the click
		// counts (swapped in under the pointer, it was lost).
		held(t, bctx, card+` button.pause`)
		pctx, pcancel := context.WithTimeout(bctx, 20*time.Second)
		defer pcancel()
		if err := chromedp.Do(pctx, chromedp.WaitVisible(card+` .badge.paused`)); err != nil {
			t.Fatalf("pause in the dashboard: %v", err)
		}
		got, err := chromedp.Run(bctx, chromedp.Evaluate[pauseView](`(() => {
			const card = document.querySelector('.queue[data-queue="reports"]');
			return {Badge: card.querySelector(".badge.paused").textContent, Flash: document.getElementById("flash").textContent,
				Pause: card.querySelectorAll("button.pause").length, Resume: card.querySelectorAll("button.resume").length};
		})()`))
		if err != nil {
			t.Fatal(err)
		}
		if want := (pauseView{Badge: "paused until resumed", Flash: "Queue reports paused.", Resume: 1}); got != want {
			t.Errorf("after Pause the card shows %+v, want %+v", got, want)
		}
		if !queuePaused(ctx, t, w, "reports") {
			t.Error("queue reports is not paused after Pause")
		}
		err = chromedp.Do(bctx,
			click(card+` button.resume`),
			chromedp.WaitVisible(card+` button.pause`),
			chromedp.WaitNotPresent(card+` .badge.paused`),
		)
		if err != nil {
			t.Fatalf("resume in the dashboard: %v", err)
		}
		// Read in one evaluation: the live refresh may swap the page's body
		// between a query for the node and a read of its text.
		if flash, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById("flash").textContent`)); err != nil || flash != "Queue reports resumed." {
			t.Errorf("flash %q (%v), want %q", flash, err, "Queue reports resumed.")
		}
		if queuePaused(ctx, t, w, "reports") {
			t.Error("queue reports is paused after Resume")
		}
	})

	// For the screenshot, queue reports paused for an hour (broker queue
	// pause reports --for 1h), and the page afresh, with no flash.
	if err := w.client.PauseQueue(ctx, "reports", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(bctx,
		chromedp.Navigate(w.ui+"/"),
		chromedp.WaitVisible(`.queue[data-queue="reports"] .badge.paused`),
	)
	if err != nil {
		t.Fatalf("the paused queue in the dashboard: %v", err)
	}
	if badge, err := chromedp.Run(bctx, chromedp.Evaluate[string](innerText(`.queue[data-queue="reports"] .badge.paused`))); err != nil ||
		!regexp.MustCompile(`^paused until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in (59m\d\ds|1h00m)\)$`).MatchString(badge) {
		t.Errorf("the badge of a queue paused for an hour: %q (%v)", badge, err)
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
		progress, _ := chromedp.Run(qctx, chromedp.Evaluate[string](innerText(`tr.map`)))
		qcancel()
		if len(strings.Fields(points.Value)) >= 4 && ranRE.MatchString(points.Value) && !noProgressRE.MatchString(progress) {
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
		click(`.deadletter[data-id="`+id+`"] button.requeue`),
		chromedp.WaitVisible(`#flash`),
	)
	if err != nil {
		t.Fatalf("requeue in the dashboard: %v", err)
	}
	flash, err := chromedp.Run(bctx, chromedp.Evaluate[string](innerText(`#flash`)))
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

	// Cancel: the delayed task leaves the list and PROCQ_SCHED.
	err = chromedp.Do(bctx,
		click(`.delayedtask[data-id="`+delayed.ID+`"] button.cancel`),
		chromedp.WaitNotPresent(`.delayedtask[data-id="`+delayed.ID+`"]`),
		chromedp.WaitVisible(`.delayedtask[data-id="`+later.ID()+`"]`),
	)
	if err != nil {
		t.Fatalf("cancel in the dashboard: %v", err)
	}
	if flash, err := chromedp.Run(bctx, chromedp.Evaluate[string](innerText(`#flash`))); err != nil || flash != "Delayed task "+delayed.ID+" cancelled." {
		t.Errorf("flash %q (%v), want %q", flash, err, "Delayed task "+delayed.ID+" cancelled.")
	}
	pending, err := w.client.PendingTasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].ID != later.ID() {
		t.Errorf("delayed tasks after the cancel: %+v, want the item %s alone", pending, later.ID())
	}

	t.Run("logout revokes the session", func(t *testing.T) {
		err := chromedp.Do(bctx,
			click(`header .logout button`),
			chromedp.WaitVisible(`input[name="token"]`),
		)
		if err != nil {
			t.Fatalf("logout: %v", err)
		}
		// The old cookie, sent by hand: the login page, not the dashboard.
		old := http.Header{"Cookie": {sessionCookie + "=" + session.Value}}
		for _, path := range []string{"/", "/api/status", "/events"} {
			if code, page := w.fetch(t, path, old); code != http.StatusUnauthorized || !strings.Contains(page, `name="token"`) {
				t.Errorf("%s with the session after logout: %d, want 401 and the login form", path, code)
			}
		}
		res, err := chromedp.Call(bctx, network.GetCookies, network.GetCookiesParams{URLs: []string{w.ui + "/"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range res.Cookies {
			if c.Name == sessionCookie {
				t.Errorf("the browser keeps the session cookie after logout")
			}
		}
	})
}

// click clicks the first element sel matches. The live update swaps the
// page's body every second: when it does between chromedp's query of the
// element and its click, the node the click names is gone ("Could not
// find node with given id"), and the click is tried again on the new one.
func click(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for try := 1; ; try++ {
			_, err := chromedp.Click(sel)(ctx, tg)
			if err == nil || try == 5 || !strings.Contains(err.Error(), "Could not find node with given id") {
				return err
			}
		}
	})
}

// held presses the left button on the element sel matches, holds it until
// the page has received a live update (within 20 s), checks that the
// update has not replaced the page's body meanwhile, and releases it.
func held(t *testing.T, bctx context.Context, sel string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(bctx, 20*time.Second)
	defer cancel()
	updates := make(chan struct{}, 16)
	lctx, lcancel := context.WithCancel(bctx)
	defer lcancel()
	if err := chromedp.Listen(lctx, func(ev any) {
		if e, ok := ev.(*network.EventEventSourceMessageReceived); ok && e.EventName == "body" {
			select {
			case updates <- struct{}{}:
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	at, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`(() => {
		document.getElementById("live").appendChild(document.createElement("i")).id = "stale";
		const r = document.querySelector(`+strconv.Quote(sel)+`).getBoundingClientRect();
		return [r.x + r.width/2, r.y + r.height/2];
	})()`))
	if err != nil || len(at) != 2 {
		t.Fatalf("find %s: %v %v", sel, at, err)
	}
	for len(updates) > 0 {
		<-updates // only updates after the press count
	}
	if err := chromedp.Do(ctx, chromedp.MouseEvent(input.DispatchMouseEventTypeMousePressed, at[0], at[1], chromedp.ButtonLeft, chromedp.ClickCount(1))); err != nil {
		t.Fatalf("press %s: %v", sel, err)
	}
	select {
	case <-updates:
	case <-ctx.Done():
		t.Fatalf("no live update within 20s while %s was held", sel)
	}
	time.Sleep(200 * time.Millisecond) // the update handled
	stale, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("stale") !== null`))
	if err != nil {
		t.Fatal(err)
	}
	if !stale {
		t.Errorf("a live update replaced the page's body while %s was held down", sel)
	}
	if err := chromedp.Do(ctx, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseReleased, at[0], at[1], chromedp.ButtonLeft, chromedp.ClickCount(1))); err != nil {
		t.Fatalf("release %s: %v", sel, err)
	}
}

// pauseView is what a queue's card shows of its pause.
type pauseView struct {
	Badge, Flash  string // the badge's text, the flash's
	Pause, Resume int    // its Pause and Resume buttons
}

// queuePaused reports whether the queue's durable is paused (JetStream's
// consumer info).
func queuePaused(ctx context.Context, t *testing.T, w *opsWorld, queue string) bool {
	t.Helper()
	c, err := w.client.JetStream().Consumer(ctx, protocol.TasksStream, protocol.DurableName(queue))
	if err != nil {
		t.Fatal(err)
	}
	ci, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ci.Paused
}

// xssView is what the page shows of the dead letter of markup.
type xssView struct {
	Kind, Reason, Title string // its cells' text, and the reason's title
	XSS                 string // typeof window.__xss
	Tags                int    // script and img elements in the page's body
}

// otherSite is another web app on another port of 127.0.0.1: it records
// every request the browser sends it, and its page /attack tries to
// requeue a dead letter in the dashboard, by fetch() with the browser's
// credentials, then by a form that submits itself.
type otherSite struct {
	*httptest.Server
	target string // the dashboard's requeue URL
	mu     sync.Mutex
	reqs   []string // each request, its line and headers
}

func newOtherSite(t *testing.T, target string) *otherSite {
	o := &otherSite{target: target}
	page := fmt.Sprintf(`<!doctype html>
<title>another local web app</title>
<img src="/pixel.gif" alt="">
<form id="f" method="post" action="%[1]s"><input type="hidden" name="csrf" value="guess"></form>
<script>
fetch("%[1]s", {method: "POST", credentials: "include", mode: "no-cors",
  headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "csrf=guess"})
  .finally(function () { document.getElementById("f").submit(); });
</script>
`, target)
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dump, _ := httputil.DumpRequest(r, false)
		o.mu.Lock()
		o.reqs = append(o.reqs, string(dump))
		o.mu.Unlock()
		switch r.URL.Path {
		case "/attack":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, page)
		case "/pixel.gif":
			w.Header().Set("Content-Type", "image/gif")
			w.Write([]byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *otherSite) seen() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.reqs)
}

// noRedirect is an HTTP client that shows redirects rather than follows
// them.
var noRedirect = &http.Client{Timeout: 10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// sendFull posts form to the dashboard's path with the headers h, and
// returns the status, the body and the cookies set.
func (w *opsWorld) sendFull(t *testing.T, path string, form url.Values, h http.Header) (int, string, []*http.Cookie) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, w.ui+path, strings.NewReader(form.Encode()))
	for k, vs := range h {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Cookies()
}

func (w *opsWorld) send(t *testing.T, path string, form url.Values, h http.Header) (int, string) {
	t.Helper()
	code, body, _ := w.sendFull(t, path, form, h)
	return code, body
}

// fetch gets the dashboard's path with the headers h (within 10 s: not an
// event stream that is served).
func (w *opsWorld) fetch(t *testing.T, path string, h http.Header) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.ui+path, nil)
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// deadIDs are the ids of queue ops' dead letters, from `broker dead list`.
func (w *opsWorld) deadIDs(t *testing.T) []string {
	t.Helper()
	p := w.e.start("broker", "dead", "list", "--queue", "ops", "--json")
	p.mustExit(0, 30*time.Second)
	var dls []ops.DeadLetter
	if err := json.Unmarshal([]byte(p.stdout.String()), &dls); err != nil {
		t.Fatalf("dead list --json: %v\n%s", err, p.stdout)
	}
	var ids []string
	for _, d := range dls {
		ids = append(ids, strconv.FormatUint(d.ID, 10))
	}
	return ids
}

// innerText is the script that reads the visible text of the first node
// sel matches ("" when none), in one evaluation: the live refresh swaps
// the page's body every second, and a query for a node and a read of its
// text done apart may find it gone ("No node with given id found").
func innerText(sel string) string {
	return fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? e.innerText : ""; })()`, sel)
}
