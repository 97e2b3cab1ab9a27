package dashboard

import (
	"crypto/tls"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
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
	c := login(t, d)
	csrf := csrfOf(t, d, c)
	other := login(t, d) // another session: its token is not this one's
	otherCSRF := csrfOf(t, d, other)
	if csrf == "" || csrf == otherCSRF || csrf == c.Value {
		t.Fatalf("CSRF tokens %q and %q of sessions %q, %q", csrf, otherCSRF, c.Value, other.Value)
	}
	own := "http://" + host
	for _, tt := range []struct {
		name          string
		path, csrf    string
		origin, refer string
		site          string
	}{
		{name: "no CSRF token", path: "/dead/1/requeue", origin: own},
		{name: "wrong CSRF token", path: "/dead/1/requeue", csrf: strings.Repeat("x", len(csrf)), origin: own},
		{name: "another session's CSRF token", path: "/dead/1/requeue", csrf: otherCSRF, origin: own},
		{name: "other port", path: "/dead/1/requeue", csrf: csrf, origin: "http://127.0.0.1:9999"},
		{name: "https", path: "/dead/1/requeue", csrf: csrf, origin: "https://" + host},
		{name: "null origin", path: "/dead/1/requeue", csrf: csrf, origin: "null"},
		{name: "referer of another port", path: "/dead/1/requeue", csrf: csrf, refer: "http://127.0.0.1:9999/attack"},
		{name: "neither Origin nor Referer", path: "/dead/1/requeue", csrf: csrf},
		{name: "same-site fetch", path: "/dead/1/requeue", csrf: csrf, origin: own, site: "same-site"},
		{name: "logout without CSRF token", path: "/logout", origin: own},
		{name: "logout from another origin", path: "/logout", csrf: csrf, origin: "http://localhost:8222"},
	} {
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
			t.Errorf("%s: %d, want 403", tt.name, w.Code)
		}
	}
	// A bearer needs no CSRF token, but may not name another origin.
	r := form("/dead/1/requeue", nil)
	r.Header.Set("Authorization", "Bearer "+testToken)
	r.Header.Set("Origin", "http://127.0.0.1:9999")
	if w := serve(d, r); w.Code != http.StatusForbidden {
		t.Errorf("bearer from another origin: %d, want 403", w.Code)
	}

	// The session survived all that; logout, right (the token in a header
	// this time, and a Referer), revokes it.
	r = form("/logout", nil)
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
