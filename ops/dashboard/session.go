package dashboard

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// SessionCookie is the dashboard's login cookie. Its value is a random
// session id, never the broker token: browsers send a cookie to every port
// of its host, so another web server on the same host receives it, and it
// must not be worth more than a dashboard session (revocable, expiring,
// unknown to NATS).
const SessionCookie = "procq_session"

// legacyTokenCookie is the cookie that held the token itself before
// sessions: login and logout delete it from the browser.
const legacyTokenCookie = "procq_token"

const (
	// SessionIdle is how long a session lives without a request.
	SessionIdle = 12 * time.Hour
	// maxSessions bounds the sessions kept: only token holders open one,
	// and a login beyond it drops the least recently used.
	maxSessions = 1000
	// maxForm bounds a form's body.
	maxForm = 64 << 10
)

// session is one login: what its cookie's id maps to.
type session struct {
	csrf  string    // its CSRF token: every state-changing request carries it
	seen  time.Time // the last request
	flash string    // a message for the next page (after a requeue)
}

// sessions are the logins, in memory: a broker restart forgets them all.
// They are keyed by the SHA-256 of their id, so that a lookup's timing
// says nothing about the ids.
type sessions struct {
	mu   sync.Mutex
	byID map[[sha256.Size]byte]*session
	idle time.Duration
	now  func() time.Time
}

func newSessions(idle time.Duration) *sessions {
	return &sessions{byID: map[[sha256.Size]byte]*session{}, idle: idle, now: time.Now}
}

// randomText is 32 random bytes, base64url (43 characters).
func randomText() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand.Read crashes the program rather)
	return base64.RawURLEncoding.EncodeToString(b)
}

func sessionKey(id string) [sha256.Size]byte { return sha256.Sum256([]byte(id)) }

// create opens a session and returns its id.
func (s *sessions) create() string {
	id := randomText()
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var oldest [sha256.Size]byte
	var oldestSeen time.Time
	for k, v := range s.byID {
		if now.Sub(v.seen) > s.idle {
			delete(s.byID, k)
		} else if oldestSeen.IsZero() || v.seen.Before(oldestSeen) {
			oldest, oldestSeen = k, v.seen
		}
	}
	if len(s.byID) >= maxSessions {
		delete(s.byID, oldest)
	}
	s.byID[sessionKey(id)] = &session{csrf: randomText(), seen: now}
	return id
}

// use returns the live session of id, as it is now, and marks it used; ok
// is false for an unknown, revoked or expired one.
func (s *sessions) use(id string) (session, bool) {
	if b, err := base64.RawURLEncoding.DecodeString(id); err != nil || len(b) != 32 {
		return session{}, false
	}
	k := sessionKey(id)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.byID[k]
	if v == nil {
		return session{}, false
	}
	if now.Sub(v.seen) > s.idle {
		delete(s.byID, k)
		return session{}, false
	}
	v.seen = now
	return *v, true
}

// takeFlash returns the session's flash message and clears it.
func (s *sessions) takeFlash(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.byID[sessionKey(id)]
	if v == nil {
		return ""
	}
	f := v.flash
	v.flash = ""
	return f
}

func (s *sessions) setFlash(id, flash string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.byID[sessionKey(id)]; v != nil {
		v.flash = flash
	}
}

// revoke deletes the session of id.
func (s *sessions) revoke(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, sessionKey(id))
}

// sessionCookie is the login cookie with value (deleting it when value is
// empty): HttpOnly, SameSite=Strict, the whole site, and Secure when the
// request came over TLS.
func sessionCookie(r *http.Request, value string) *http.Cookie {
	c := &http.Cookie{Name: SessionCookie, Value: value, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
	if value == "" {
		c.MaxAge = -1
	}
	return c
}

// origin is the dashboard's own origin as r reached it: scheme://host:port.
func origin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

var (
	errCrossOrigin = errors.New("the request comes from another origin")
	errNoOrigin    = errors.New("the request names no origin (neither Origin nor Referer)")
	errCSRF        = errors.New("the request lacks the dashboard's CSRF token")
)

// sameOrigin checks where a state-changing request comes from: its Origin
// header, or its Referer when it has no Origin, must be the dashboard's
// own origin, and Sec-Fetch-Site, when the browser sends it, must say
// same-origin. It returns errNoOrigin when the request names no origin at
// all (curl, a script): the caller decides whether that is enough.
func sameOrigin(r *http.Request) error {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return errCrossOrigin
	}
	own := origin(r)
	if o := r.Header.Values("Origin"); len(o) > 0 {
		if len(o) != 1 || !strings.EqualFold(o[0], own) {
			return errCrossOrigin
		}
		return nil
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		u, err := url.Parse(ref)
		if err != nil || !strings.EqualFold(u.Scheme+"://"+u.Host, own) {
			return errCrossOrigin
		}
		return nil
	}
	return errNoOrigin
}

// checkCSRF checks a state-changing request of a browser session: from
// the dashboard's own origin (named: a session's request that names none
// is refused), with the session's CSRF token, in the form field "csrf" or
// the header X-CSRF-Token.
func checkCSRF(r *http.Request, s session) error {
	if err := sameOrigin(r); err != nil {
		return err
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
		return errCSRF
	}
	return nil
}

// alive reports whether the session of id is live, without marking it
// used: an open event stream does not keep a session from going idle.
func (s *sessions) alive(id string) bool {
	k := sessionKey(id)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.byID[k]
	return v != nil && now.Sub(v.seen) <= s.idle
}
