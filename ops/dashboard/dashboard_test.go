package dashboard

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/msgq"
	"github.com/procq/procq/ops"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/schedule"
	"github.com/procq/procq/unique"
)

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "-", 3 * time.Second: "3s", 4*time.Minute + 12*time.Second: "4m12s",
		2*time.Hour + 5*time.Minute: "2h05m", 76 * time.Hour: "3d04h",
	} {
		if got := age(d); got != want {
			t.Errorf("age(%v) = %q, want %q", d, got, want)
		}
	}
}

const testToken = "0123456789abcdef0123456789abcdef"

// testDashboard is a dashboard with no broker behind it (it never reads
// one: an empty view) and a clock the test moves.
func testDashboard(now *time.Time) *Dashboard {
	d := &Dashboard{token: []byte(testToken), log: slog.New(slog.DiscardHandler), every: time.Second,
		history: map[string][]int64{}, sessions: newSessions(SessionIdle)}
	d.sessions.now = func() time.Time { return *now }
	return d
}

const host = "127.0.0.1:8222"

func serve(d *Dashboard, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	d.ServeHTTP(w, r)
	return w
}

func form(path string, v url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "http://"+host+path, strings.NewReader(v.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

// login logs in with the token and returns the session cookie.
func login(t *testing.T, d *Dashboard) *http.Cookie {
	t.Helper()
	w := serve(d, form("/login", url.Values{"token": {testToken + "\n"}})) // as curl --data-urlencode token@file sends it
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/" {
		t.Fatalf("login: %d %v", w.Code, w.Header())
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == SessionCookie {
			return c
		}
	}
	t.Fatalf("login set no %s cookie: %v", SessionCookie, w.Header())
	return nil
}

func csrfOf(t *testing.T, d *Dashboard, c *http.Cookie) string {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "http://"+host+"/", nil)
	r.AddCookie(c)
	w := serve(d, r)
	body := w.Body.String()
	const meta = `<meta name="csrf-token" content="`
	i := strings.Index(body, meta)
	if w.Code != http.StatusOK || i < 0 {
		t.Fatalf("GET / with the session: %d\n%.300s", w.Code, body)
	}
	tok := body[i+len(meta):]
	return tok[:strings.IndexByte(tok, '"')]
}

func TestLoginCookie(t *testing.T) {
	now := time.Now()
	d := testDashboard(&now)
	c := login(t, d)
	if raw, err := base64.RawURLEncoding.DecodeString(c.Value); err != nil || len(raw) != 32 {
		t.Errorf("session id %q: not 32 bytes of base64url (%v)", c.Value, err)
	}
	if strings.Contains(c.Value, testToken) || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure {
		t.Errorf("session cookie %+v: want a random id, HttpOnly, SameSite=Strict, Path=/, not Secure over plain HTTP", c)
	}
	if c2 := login(t, d); c2.Value == c.Value {
		t.Error("two logins got the same session id")
	}

	// Over TLS the cookie is Secure.
	r := form("/login", url.Values{"token": {testToken}})
	r.TLS = &tls.ConnectionState{}
	if cs := serve(d, r).Result().Cookies(); len(cs) != 1 || !cs[0].Secure {
		t.Errorf("login over TLS set %v, want one Secure cookie", cs)
	}

	// Wrong token, or a login posted from another origin: no cookie.
	for name, r := range map[string]*http.Request{
		"wrong token":  form("/login", url.Values{"token": {testToken[1:] + "x"}}),
		"empty token":  form("/login", url.Values{"token": {""}}),
		"other origin": form("/login", url.Values{"token": {testToken}}),
		"cross site":   form("/login", url.Values{"token": {testToken}}),
	} {
		switch name {
		case "other origin":
			r.Header.Set("Origin", "http://127.0.0.1:9999")
		case "cross site":
			r.Header.Set("Sec-Fetch-Site", "cross-site")
		}
		w := serve(d, r)
		if len(w.Result().Cookies()) != 0 || (w.Code != http.StatusUnauthorized && w.Code != http.StatusForbidden) {
			t.Errorf("login, %s: %d, cookies %v", name, w.Code, w.Result().Cookies())
		}
	}

	// The token itself in a cookie (as before sessions) is no login, and
	// the dashboard deletes it from the browser.
	r = httptest.NewRequest(http.MethodGet, "http://"+host+"/", nil)
	r.AddCookie(&http.Cookie{Name: legacyTokenCookie, Value: testToken})
	w := serve(d, r)
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Header().Get("Set-Cookie"), legacyTokenCookie+"=;") {
		t.Errorf("GET / with the token as a cookie: %d, Set-Cookie %q", w.Code, w.Header().Get("Set-Cookie"))
	}
	// A bearer still works, and a bogus session cookie does not.
	r = httptest.NewRequest(http.MethodGet, "http://"+host+"/api/status", nil)
	r.Header.Set("Authorization", "Bearer "+testToken)
	if w := serve(d, r); w.Code != http.StatusOK {
		t.Errorf("bearer: %d", w.Code)
	}
	r = httptest.NewRequest(http.MethodGet, "http://"+host+"/", nil)
	r.AddCookie(&http.Cookie{Name: SessionCookie, Value: strings.Repeat("A", 43)})
	if w := serve(d, r); w.Code != http.StatusUnauthorized {
		t.Errorf("unknown session: %d", w.Code)
	}
}

func TestStateChangeNeedsCSRFAndOrigin(t *testing.T) {
	now := time.Now()
	d := testDashboard(&now)
	d.js = startBroker(t) // a delayed task that a refused cancel must leave, a queue a refused pause must not pause
	delayedID := delay(t, d.js, "report")
	c := login(t, d)
	csrf := csrfOf(t, d, c)
	other := login(t, d) // another session: its token is not this one's
	otherCSRF := csrfOf(t, d, other)
	if csrf == "" || csrf == otherCSRF || csrf == c.Value {
		t.Fatalf("CSRF tokens %q and %q of sessions %q, %q", csrf, otherCSRF, c.Value, other.Value)
	}
	own := "http://" + host
	type refusal struct {
		name          string
		path, csrf    string
		origin, refer string
		site          string
	}
	var refusals []refusal
	// Each for a requeue, a cancel and a pause.
	changes := []string{"/dead/1/requeue", "/delayed/" + delayedID + "/cancel", "/queue/dash/pause"}
	for _, path := range changes {
		refusals = append(refusals, []refusal{
			{name: "no CSRF token", path: path, origin: own},
			{name: "wrong CSRF token", path: path, csrf: strings.Repeat("x", len(csrf)), origin: own},
			{name: "another session's CSRF token", path: path, csrf: otherCSRF, origin: own},
			{name: "other port", path: path, csrf: csrf, origin: "http://127.0.0.1:9999"},
			{name: "https", path: path, csrf: csrf, origin: "https://" + host},
			{name: "null origin", path: path, csrf: csrf, origin: "null"},
			{name: "referer of another port", path: path, csrf: csrf, refer: "http://127.0.0.1:9999/attack"},
			{name: "neither Origin nor Referer", path: path, csrf: csrf},
			{name: "same-site fetch", path: path, csrf: csrf, origin: own, site: "same-site"},
		}...)
	}
	refusals = append(refusals,
		refusal{name: "logout without CSRF token", path: "/logout", origin: own},
		refusal{name: "logout from another origin", path: "/logout", csrf: csrf, origin: "http://localhost:8222"})
	for _, tt := range refusals {
		r := form(tt.path, url.Values{"csrf": {tt.csrf}})
		r.AddCookie(c)
		if tt.origin != "" {
			r.Header.Set("Origin", tt.origin)
		}
		if tt.refer != "" {
			r.Header.Set("Referer", tt.refer)
		}
		if tt.site != "" {
			r.Header.Set("Sec-Fetch-Site", tt.site)
		}
		if w := serve(d, r); w.Code != http.StatusForbidden {
			t.Errorf("%s %s: %d, want 403", tt.path, tt.name, w.Code)
		}
	}
	// A bearer needs no CSRF token, but may not name another origin.
	for _, path := range changes {
		r := form(path, nil)
		r.Header.Set("Authorization", "Bearer "+testToken)
		r.Header.Set("Origin", "http://127.0.0.1:9999")
		if w := serve(d, r); w.Code != http.StatusForbidden {
			t.Errorf("%s by a bearer from another origin: %d, want 403", path, w.Code)
		}
	}
	if got := pendingIDs(t, d.js); len(got) != 1 || got[0] != delayedID {
		t.Errorf("delayed tasks after the refused cancels: %v, want [%s]", got, delayedID)
	}
	if paused(t, d.js, "dash") {
		t.Error("queue dash is paused after the refused pauses")
	}

	// The session survived all that; logout, right (the token in a header
	// this time, and a Referer), revokes it.
	r := form("/logout", nil)
	r.AddCookie(c)
	r.Header.Set("X-CSRF-Token", csrf)
	r.Header.Set("Referer", own+"/")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	w := serve(d, r)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login" || !strings.Contains(w.Header().Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("logout: %d %v", w.Code, w.Header())
	}
	r = httptest.NewRequest(http.MethodGet, own+"/", nil)
	r.AddCookie(c)
	if w := serve(d, r); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), `name="token"`) {
		t.Errorf("GET / after logout: %d, want 401 and the login form", w.Code)
	}
	// The other session lives on.
	if csrfOf(t, d, other) != otherCSRF {
		t.Error("the other session's CSRF token changed")
	}
}

func TestSessionExpires(t *testing.T) {
	now := time.Now()
	d := testDashboard(&now)
	c := login(t, d)
	get := func() int {
		r := httptest.NewRequest(http.MethodGet, "http://"+host+"/body", nil)
		r.AddCookie(c)
		w := serve(d, r)
		_, _ = io.Copy(io.Discard, w.Body)
		return w.Code
	}
	now = now.Add(SessionIdle - time.Minute)
	if code := get(); code != http.StatusOK { // used: idle again from now
		t.Fatalf("before the idle timeout: %d", code)
	}
	now = now.Add(SessionIdle - time.Minute)
	if code := get(); code != http.StatusOK {
		t.Fatalf("used within the idle timeout: %d", code)
	}
	now = now.Add(SessionIdle + time.Second)
	if code := get(); code != http.StatusUnauthorized {
		t.Errorf("after %v idle: %d, want 401", SessionIdle, code)
	}
}

// startBroker starts a real broker with queue "dash" (and so the
// schedules' stream) declared.
func startBroker(t *testing.T) jetstream.JetStream {
	t.Helper()
	js := natstest.Start(t).JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := protocol.EnsureQueue(ctx, js, protocol.QueueConfig{Name: "dash"}); err != nil {
		t.Fatal(err)
	}
	return js
}

// delay puts a task of kind on queue dash, as any client does (the wire
// format), delayed by an hour, and returns its id.
func delay(t *testing.T, js jetstream.JetStream, kind string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := &nats.Msg{Subject: protocol.WorkSubject("dash", "r1"), Data: []byte(`{"x":1}`),
		Header: nats.Header{protocol.HeaderKind: {kind}}}
	dl := schedule.Delay(msg, time.Now().Add(time.Hour))
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	return dl.ID
}

// pendingIDs are the ids of the delayed tasks in PROCQ_SCHED.
func pendingIDs(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ps, err := schedule.Pending(ctx, js, protocol.DelayedFilter)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, p := range ps {
		ids = append(ids, p.ID)
	}
	return ids
}

// TestScheduledAndCancel: on a real broker, the page shows the queue's
// and the message queue's scheduled counts, the periodic schedules with
// their next firing, and the delayed tasks, their markup as text; Cancel
// (the session's CSRF token, the dashboard's origin) removes a delayed
// task from PROCQ_SCHED and says so, a bearer's cancel too; a cancel of a
// task that is gone says it had fired; a bad id is refused before use.
func TestScheduledAndCancel(t *testing.T) {
	js := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := NewDashboard(ctx, js, testToken, slog.New(slog.DiscardHandler))

	const markup = `<b id="x">report</b>`
	first, second := delay(t, js, markup), delay(t, js, "report")
	mq, err := msgq.Open(ctx, js, "dashq", msgq.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mq.PutJSONAt(ctx, json.RawMessage(`"later"`), time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []schedule.Spec{
		{Name: "hourly", Queue: "dash", Kind: "report", Every: time.Hour},
		{Name: "monday", Queue: "dash", Kind: "report", Cron: "0 30 6 * * 1", TZ: "Europe/Berlin"},
		{Name: "daily", Queue: "dash", Kind: "report", Cron: "@daily"},
	} {
		if err := schedule.Add(ctx, js, s); err != nil {
			t.Fatal(err)
		}
	}

	c := login(t, d)
	page := pageReader(t, ctx, d, c)
	// row is the text of the table row (or queue card) holding attr, its
	// tags dropped and its white space made single spaces.
	tags := regexp.MustCompile(`<[^>]*>`)
	row := func(body, attr string) string {
		t.Helper()
		i := strings.Index(body, attr)
		if i < 0 {
			t.Fatalf("no %s in the page:\n%s", attr, body)
		}
		end := "</tr>"
		if strings.HasPrefix(attr, "data-queue") {
			end = "</dl>"
		}
		j := strings.Index(body[i:], end)
		return strings.Join(strings.Fields(tags.ReplaceAllString(body[i+len(attr)+1:i+j], " ")), " ")
	}
	body := page()
	if got, want := row(body, `data-queue="dash"`), "oldest task - scheduled 2 schedules 3 timed out 0 cancelled 0 duplicates 0"; !strings.HasSuffix(got, want) {
		t.Errorf("queue dash card %q, want it to end in %q", got, want)
	}
	if got, want := row(body, `data-name="dashq"`), "dashq 0 - 1"; got != want {
		t.Errorf("message queue row %q, want %q", got, want)
	}
	hourly := regexp.MustCompile(`^hourly dash report every 1h0m0s \d{4}-\d\d-\d\d \d\d:\d\d:\d\d in (59m\d\ds|1h00m)$`)
	if got := row(body, `data-name="hourly"`); !hourly.MatchString(got) {
		t.Errorf("schedule row %q, want it to match %s", got, hourly)
	}
	if got, want := row(body, `data-name="monday"`), "monday dash report cron 0 30 6 * * 1 in Europe/Berlin"; !strings.HasPrefix(got, want) {
		t.Errorf("schedule row %q, want %q", got, want)
	}
	if got, want := row(body, `data-name="daily"`), "daily dash report cron @daily in UTC"; !strings.HasPrefix(got, want) || !strings.Contains(got, " 00:00:00 in ") {
		t.Errorf("schedule row %q, want %q, next firing at midnight UTC", got, want)
	}
	if !regexp.MustCompile(`(?s)<h2>Delayed tasks <span class="count">3</span></h2>.*data-id="` + first + `".*data-id="` + second + `".*>item<`).MatchString(body) {
		t.Errorf("the delayed tasks are not listed, 3 of them, soonest first:\n%s", body)
	}
	if strings.Contains(body, markup) || !strings.Contains(body, "&lt;b id=&#34;x&#34;&gt;report&lt;/b&gt;") {
		t.Errorf("the delayed task's kind is not escaped:\n%s", body)
	}
	if got := row(body, `data-id="`+second+`"`); !strings.HasPrefix(got, second+" dash report ") || !strings.Contains(got, " in 59m") || !strings.HasSuffix(got, "Cancel") {
		t.Errorf("delayed task row %q, want its id, queue, kind, due time, in 59m..s, Cancel", got)
	}

	// Cancel, as the page's form posts it.
	csrf := csrfOf(t, d, c)
	r := form("/delayed/"+first+"/cancel", url.Values{"csrf": {csrf}})
	r.AddCookie(c)
	r.Header.Set("Origin", "http://"+host)
	if w := serve(d, r); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/" {
		t.Fatalf("cancel: %d %v\n%s", w.Code, w.Header(), w.Body)
	}
	if got := pendingIDs(t, js); len(got) != 2 || got[0] != second {
		t.Errorf("delayed tasks after cancelling %s: %v, want %s and the item", first, got, second)
	}
	body = page()
	if !strings.Contains(body, `<p class="flash" id="flash">Delayed task `+first+` cancelled.</p>`) || strings.Contains(body, `data-id="`+first+`"`) {
		t.Errorf("after the cancel, the page has no flash or still lists %s:\n%s", first, body)
	}
	if got, want := row(body, `data-queue="dash"`), "scheduled 1 schedules 3 timed out 0 cancelled 1 duplicates 0"; !strings.HasSuffix(got, want) {
		t.Errorf("queue dash card after the cancel %q, want it to end in %q", got, want)
	}

	// Again: it is gone.
	r = form("/delayed/"+first+"/cancel", url.Values{"csrf": {csrf}})
	r.AddCookie(c)
	r.Header.Set("Origin", "http://"+host)
	if w := serve(d, r); w.Code != http.StatusSeeOther {
		t.Fatalf("cancel again: %d\n%s", w.Code, w.Body)
	}
	if body := page(); !strings.Contains(body, `id="flash">Delayed task `+first+` had fired already.</p>`) {
		t.Errorf("cancel again: no flash saying it had fired:\n%s", body)
	}

	// An API client (bearer).
	for _, tt := range []struct {
		id   string
		code int
		text string
	}{
		{second, http.StatusOK, "Delayed task " + second + " cancelled.\n"},
		{second, http.StatusConflict, "Delayed task " + second + " had fired already.\n"},
	} {
		r := form("/delayed/"+tt.id+"/cancel", nil)
		r.Header.Set("Authorization", "Bearer "+testToken)
		if w := serve(d, r); w.Code != tt.code || w.Body.String() != tt.text {
			t.Errorf("bearer cancel of %s: %d %q, want %d %q", tt.id, w.Code, w.Body, tt.code, tt.text)
		}
	}
	if got := pendingIDs(t, js); len(got) != 1 || got[0] == second {
		t.Errorf("delayed tasks after cancelling %s: %v, want the item alone", second, got)
	}

	// Bad ids: refused before use.
	for _, id := range []string{"", "a.b", "a b", "*", ">", "%2E", strings.Repeat("a", 65), "é"} {
		r := form("/delayed/"+url.PathEscape(id)+"/cancel", url.Values{"csrf": {csrf}})
		r.AddCookie(c)
		r.Header.Set("Origin", "http://"+host)
		if w := serve(d, r); w.Code != http.StatusBadRequest {
			t.Errorf("cancel of id %q: %d, want 400", id, w.Code)
		}
	}
	r = form("/delayed/cancel", url.Values{"csrf": {csrf}})
	r.AddCookie(c)
	r.Header.Set("Origin", "http://"+host)
	if w := serve(d, r); w.Code != http.StatusBadRequest {
		t.Errorf("POST /delayed/cancel: %d, want 400", w.Code)
	}
	if !validTaskID(strings.Repeat("Az9", 21)) || !validTaskID("job-42_b") || !validTaskID(first) {
		t.Error("validTaskID refuses a good id")
	}
}

// paused reports whether the queue's durable is paused (JetStream's
// consumer info).
func paused(t *testing.T, js jetstream.JetStream, queue string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, protocol.TasksStream, protocol.DurableName(queue))
	if err != nil {
		t.Fatal(err)
	}
	ci, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ci.Paused
}

func TestPausedText(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { u := now.Add(d); return &u }
	berlin := time.FixedZone("CET", 3600)
	for _, tt := range []struct {
		until   *time.Time
		text    string
		forever bool
	}{
		{nil, "", false},
		{at(ops.Forever), "paused until resumed", true},
		{at(ops.Forever - time.Hour), "paused until resumed", true},
		{at(42*time.Minute + 10*time.Second), "paused until 2026-03-01 12:42:10 UTC (in 42m10s)", false},
		{at(3 * time.Hour), "paused until 2026-03-01 15:00:00 UTC (in 3h00m)", false},
		{at(500 * time.Millisecond), "paused until 2026-03-01 12:00:00 UTC (now)", false},
	} {
		if got := pausedText(tt.until, now); got != tt.text {
			t.Errorf("pausedText(%v) = %q, want %q", tt.until, got, tt.text)
		}
		if got := pausedForever(tt.until, now); got != tt.forever {
			t.Errorf("pausedForever(%v) = %v, want %v", tt.until, got, tt.forever)
		}
	}
	local := now.Add(time.Hour).In(berlin) // shown in UTC whatever its zone
	if got, want := pausedText(&local, now), "paused until 2026-03-01 13:00:00 UTC (in 1h00m)"; got != want {
		t.Errorf("pausedText of a time in CET = %q, want %q", got, want)
	}
}

// TestPauseAndResume: on a real broker, Pause on a queue's card (the
// session's CSRF token, the dashboard's origin) pauses its durable until
// resumed, and the card says so with a Resume button and no Pause; a
// pause with an end shows its time and both buttons; Resume ends the
// pause; an unknown queue is a flash for a session and 404 for a bearer;
// a bad queue name is refused before use.
func TestPauseAndResume(t *testing.T) {
	js := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := NewDashboard(ctx, js, testToken, slog.New(slog.DiscardHandler))
	c := login(t, d)
	csrf := csrfOf(t, d, c)
	page := pageReader(t, ctx, d, c)
	// card is the queue card of dash, its markup.
	card := func(body string) string {
		t.Helper()
		i := strings.Index(body, `<div class="card queue`)
		j := strings.Index(body[max(i, 0):], "</section>")
		if i < 0 || j < 0 || !strings.Contains(body[i:i+j], `data-queue="dash"`) {
			t.Fatalf("no card of queue dash in the page:\n%s", body)
		}
		return body[i : i+j]
	}
	post := func(path string) *httptest.ResponseRecorder {
		t.Helper()
		r := form(path, url.Values{"csrf": {csrf}})
		r.AddCookie(c)
		r.Header.Set("Origin", "http://"+host)
		return serve(d, r)
	}
	const (
		pauseForm  = `<form method="post" action="/queue/dash/pause">`
		resumeForm = `<form method="post" action="/queue/dash/resume">`
		badge      = `<span class="badge paused">`
	)

	k := card(page())
	if strings.Contains(k, "paused") || !strings.Contains(k, pauseForm) || strings.Contains(k, resumeForm) {
		t.Errorf("the card of a queue not paused: want no pause, a Pause button and no Resume:\n%s", k)
	}

	// Pause, as the card's form posts it.
	if w := post("/queue/dash/pause"); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/" {
		t.Fatalf("pause: %d %v\n%s", w.Code, w.Header(), w.Body)
	}
	if !paused(t, js, "dash") {
		t.Fatal("the durable of queue dash is not paused after Pause")
	}
	body := page()
	if !strings.Contains(body, `<p class="flash" id="flash">Queue dash paused.</p>`) {
		t.Errorf("no flash after the pause:\n%s", body)
	}
	k = card(body)
	if !strings.Contains(k, `<div class="card queue paused" data-queue="dash">`) || !strings.Contains(k, badge+"paused until resumed</span>") ||
		strings.Contains(k, pauseForm) || !strings.Contains(k, resumeForm+`<input type="hidden" name="csrf" value="`+csrf+`">`) {
		t.Errorf("the card of a queue paused until resumed: want the badge, Resume with the CSRF token, no Pause:\n%s", k)
	}

	// A pause with an end (broker queue pause --for 90m): its time, and
	// Pause (until resumed) as well as Resume.
	if err := ops.PauseQueue(ctx, js, "dash", time.Now().Add(90*time.Minute)); err != nil {
		t.Fatal(err)
	}
	k = card(page())
	timed := regexp.MustCompile(badge + `paused until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in 1h(29|30)m\)</span>`)
	if !timed.MatchString(k) || !strings.Contains(k, pauseForm) || !strings.Contains(k, resumeForm) {
		t.Errorf("the card of a queue paused for 90m: want a badge matching %s, Pause and Resume:\n%s", timed, k)
	}

	// Resume.
	if w := post("/queue/dash/resume"); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/" {
		t.Fatalf("resume: %d %v\n%s", w.Code, w.Header(), w.Body)
	}
	if paused(t, js, "dash") {
		t.Fatal("the durable of queue dash is paused after Resume")
	}
	body = page()
	if !strings.Contains(body, `<p class="flash" id="flash">Queue dash resumed.</p>`) {
		t.Errorf("no flash after the resume:\n%s", body)
	}
	if k := card(body); strings.Contains(k, "paused") || !strings.Contains(k, pauseForm) || strings.Contains(k, resumeForm) {
		t.Errorf("the card after Resume: want no pause, Pause and no Resume:\n%s", k)
	}

	// An unknown queue: a flash for a session.
	for _, action := range []string{"pause", "resume"} {
		if w := post("/queue/nosuch/" + action); w.Code != http.StatusSeeOther {
			t.Fatalf("%s of an unknown queue: %d\n%s", action, w.Code, w.Body)
		}
		if body := page(); !strings.Contains(body, `id="flash">No queue nosuch.</p>`) {
			t.Errorf("%s of an unknown queue: no flash saying so:\n%s", action, body)
		}
	}

	// An API client (bearer).
	for _, tt := range []struct {
		path   string
		code   int
		text   string
		paused bool
	}{
		{"/queue/nosuch/pause", http.StatusNotFound, "No queue nosuch.\n", false},
		{"/queue/nosuch/resume", http.StatusNotFound, "No queue nosuch.\n", false},
		{"/queue/dash/pause", http.StatusOK, "Queue dash paused.\n", true},
		{"/queue/dash/resume", http.StatusOK, "Queue dash resumed.\n", false},
	} {
		r := form(tt.path, nil)
		r.Header.Set("Authorization", "Bearer "+testToken)
		if w := serve(d, r); w.Code != tt.code || w.Body.String() != tt.text {
			t.Errorf("bearer %s: %d %q, want %d %q", tt.path, w.Code, w.Body, tt.code, tt.text)
		}
		if got := paused(t, js, "dash"); got != tt.paused {
			t.Errorf("after bearer %s: queue dash paused %v, want %v", tt.path, got, tt.paused)
		}
	}

	// Bad names: refused before use; no such action; not by GET.
	for _, name := range []string{"", "a.b", "a b", "*", ">", "%2E", strings.Repeat("a", 65), "é", "dash/x"} {
		if w := post("/queue/" + url.PathEscape(name) + "/pause"); w.Code != http.StatusBadRequest {
			t.Errorf("pause of queue %q: %d, want 400", name, w.Code)
		}
	}
	if w := post("/queue/dash/stop"); w.Code != http.StatusNotFound {
		t.Errorf("POST /queue/dash/stop: %d, want 404", w.Code)
	}
	r := httptest.NewRequest(http.MethodGet, "http://"+host+"/queue/dash/pause", nil)
	r.AddCookie(c)
	if w := serve(d, r); w.Code != http.StatusNotFound {
		t.Errorf("GET /queue/dash/pause: %d, want 404", w.Code)
	}
	if paused(t, js, "dash") {
		t.Error("queue dash is paused after the refused requests")
	}
}

// TestUniqueKeysShown: a queue card says how many unique keys its tasks
// hold, a message queue's row how many its items hold; none, nothing.
func TestUniqueKeysShown(t *testing.T) {
	js := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := NewDashboard(ctx, js, testToken, slog.New(slog.DiscardHandler))
	c := login(t, d)
	page := pageReader(t, ctx, d, c)
	mq, err := msgq.Open(ctx, js, "uq", msgq.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if body := page(); strings.Contains(body, "unique key") {
		t.Errorf("the page speaks of unique keys before any is held")
	}
	b := unique.NewBucket(js, 1, nil)
	for _, k := range []string{"a", "b"} {
		m := nats.NewMsg(protocol.WorkSubject("dash", "r"))
		if _, err := b.Claim(ctx, m, "dash", protocol.UniqueTaskKey("dash", k), k, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := mq.PutJSONWith(ctx, json.RawMessage(`1`), protocol.TaskOptions{Unique: "a", UniqueFor: time.Hour}); err != nil {
		t.Fatal(err)
	}
	body := page()
	if !strings.Contains(body, `>2 unique keys held</p>`) {
		t.Errorf("the queue card does not say 2 unique keys held:\n%s", body)
	}
	if !strings.Contains(body, `<td>uq <span class="unique">(1 unique key held)</span></td>`) {
		t.Errorf("the message queue's row does not say 1 unique key held:\n%s", body)
	}
}

// pageReader returns a function that refreshes d's view and reads the
// page as the session c sees it.
func pageReader(t *testing.T, ctx context.Context, d *Dashboard, c *http.Cookie) func() string {
	return func() string {
		t.Helper()
		d.refresh(ctx)
		r := httptest.NewRequest(http.MethodGet, "http://"+host+"/", nil)
		r.AddCookie(c)
		w := serve(d, r)
		if w.Code != http.StatusOK {
			t.Fatalf("GET /: %d", w.Code)
		}
		return w.Body.String()
	}
}
