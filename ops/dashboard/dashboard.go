// Package dashboard is the broker's web dashboard: server-rendered pages
// of the status snapshot and the dead letters, with their HTML, CSS and
// JavaScript embedded. Only the broker's side links it: a consumer
// process neither carries its assets nor parses its templates.
package dashboard

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/procq/procq/ops"
	"github.com/procq/procq/ops/endpoint"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/schedule"
	"github.com/procq/procq/task"
)

//go:embed web
var webFiles embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"age":      age,
	"since":    func(t time.Time, now time.Time) string { return age(now.Sub(t)) },
	"progress": progressText,
	"percent":  progressPercent,
	"short":    short,
	"in":       in,
	"taskID":   validTaskID,
	"paused":   pausedText,
	"forever":  pausedForever,
}).ParseFS(webFiles, "web/*.html"))

// Dashboard is the web dashboard: live queues with pause and resume
// buttons, consumers, maps in progress, pipes, dead letters with a requeue
// button, periodic schedules with their next firing, and delayed tasks
// with a cancel button. It is
// server-rendered HTML with a small script that swaps in the fresh page
// body every second from a server-sent event stream; the assets are in
// the binary. Every route but the login needs the token as a bearer
// header (API clients), or a login session: the login form takes the token
// once and sets a cookie holding a random session id (see SessionCookie).
// A state-changing request of a session (requeue, cancel, pause, resume,
// logout) must
// carry the session's CSRF token and come from the dashboard's own origin.
type Dashboard struct {
	js       jetstream.JetStream
	token    []byte
	log      *slog.Logger
	every    time.Duration
	sessions *sessions

	mu      sync.Mutex
	latest  view // the last read: every page and stream shows it
	sampled time.Time
	done    map[string]map[string]int64 // per queue, per consumer process: tasks done at the last sample
	history map[string][]int64          // per queue: tasks per second, a sample a second, the last 120
}

// NewDashboard returns the dashboard of the broker js reaches. Until ctx
// ends it reads the broker's state once a second, whoever watches: every
// page and event stream shows that one read (no read per viewer), and the
// sparklines have the last two minutes for whoever opens the page.
func NewDashboard(ctx context.Context, js jetstream.JetStream, token string, logger *slog.Logger) *Dashboard {
	if token == "" {
		panic("dashboard.NewDashboard: empty token") // a bug: every endpoint has one
	}
	d := &Dashboard{js: js, token: []byte(token), log: logger, every: time.Second, history: map[string][]int64{},
		sessions: newSessions(SessionIdle)}
	go d.refreshEvery(ctx)
	return d
}

func (d *Dashboard) refreshEvery(ctx context.Context) {
	t := time.NewTicker(d.every)
	defer t.Stop()
	for {
		d.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refresh reads the broker's state, within 5 s, into the view every page
// shows.
func (d *Dashboard) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v := view{Refresh: int(d.every.Milliseconds())}
	st, err := ops.Snapshot(ctx, d.js)
	// The page's clock is the end of the read: a task delayed while the
	// snapshot was read must not show as due later than its delay.
	v.Now = time.Now().UTC()
	if err != nil {
		v.Err = err.Error()
		v.Status = &ops.Status{Time: v.Now}
	} else {
		v.Status = st
		v.Spark = d.sample(st)
		if dl, err := ops.OpenDeadLetters(ctx, d.js); err == nil {
			if v.Dead, err = dl.Newest(ctx, shownDead); err != nil {
				v.Err = err.Error()
			}
			for _, q := range st.Queues {
				v.DeadTotal += q.Dead
			}
		}
		v.QueueSchedules = map[string]int{}
		for _, e := range st.Schedules {
			v.QueueSchedules[e.Queue]++
		}
		for _, q := range st.Queues {
			v.DelayedTotal += q.Scheduled
		}
		for _, q := range st.MsgQueues {
			v.DelayedTotal += q.Scheduled
		}
		v.DelayedTotal = max(v.DelayedTotal, uint64(len(st.Delayed)))
	}
	d.mu.Lock()
	d.latest = v
	d.mu.Unlock()
}

// view is the last read (an empty one before the first).
func (d *Dashboard) view() view {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.latest.Status == nil {
		return view{Status: &ops.Status{}, Now: time.Now().UTC(), Refresh: int(d.every.Milliseconds())}
	}
	return d.latest
}

// ServeHTTP implements http.Handler.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; "+
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	if _, err := r.Cookie(legacyTokenCookie); err == nil { // the token itself, from before sessions
		http.SetCookie(w, &http.Cookie{Name: legacyTokenCookie, Path: "/", MaxAge: -1})
	}
	switch {
	case r.URL.Path == "/login":
		d.login(w, r)
		return
	case r.URL.Path == "/static/dashboard.css" || r.URL.Path == "/static/dashboard.js":
		http.ServeFileFS(w, r, webFiles, "web/"+strings.TrimPrefix(r.URL.Path, "/static/"))
		return
	}
	c, ok := d.authenticate(r)
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		d.render(w, "login.html", map[string]any{"Failed": false})
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if err := c.mayChange(r); err != nil {
			d.log.Warn("dashboard: request refused", "method", r.Method, "path", r.URL.Path,
				"origin", r.Header.Get("Origin"), "referer", r.Header.Get("Referer"), "reason", err)
			http.Error(w, "procq: refused: "+err.Error(), http.StatusForbidden)
			return
		}
	}
	switch {
	case r.URL.Path == "/" && r.Method == http.MethodGet:
		d.page(w, c, "page.html")
	case r.URL.Path == "/body" && r.Method == http.MethodGet:
		d.page(w, c, "body")
	case r.URL.Path == "/events" && r.Method == http.MethodGet:
		d.events(w, r, c)
	case r.URL.Path == "/api/status" && r.Method == http.MethodGet:
		v := d.view()
		if v.Err != "" {
			http.Error(w, v.Err, http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v.Status)
	case strings.HasPrefix(r.URL.Path, "/dead/") && strings.HasSuffix(r.URL.Path, "/requeue") && r.Method == http.MethodPost:
		d.requeue(w, r, c)
	case strings.HasPrefix(r.URL.Path, "/delayed/") && strings.HasSuffix(r.URL.Path, "/cancel") && r.Method == http.MethodPost:
		d.cancel(w, r, c)
	case strings.HasPrefix(r.URL.Path, "/maps/") && strings.HasSuffix(r.URL.Path, "/cancel") && r.Method == http.MethodPost:
		d.cancelInput(w, r, c)
	case strings.HasPrefix(r.URL.Path, "/queue/") && r.Method == http.MethodPost &&
		(strings.HasSuffix(r.URL.Path, "/pause") || strings.HasSuffix(r.URL.Path, "/resume")):
		d.pauseOrResume(w, r, c)
	case r.URL.Path == "/logout" && r.Method == http.MethodPost:
		if c.id != "" {
			d.sessions.revoke(c.id)
		}
		http.SetCookie(w, sessionCookie(r, ""))
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	default:
		http.NotFound(w, r)
	}
}

// caller is who made a request: a browser session, or an API client with
// the token as a bearer header.
type caller struct {
	id string  // the session id; empty for a bearer
	s  session // the session, as it was when the request came
}

// authenticate returns the request's caller: the bearer token first, else
// a live session of its cookies.
func (d *Dashboard) authenticate(r *http.Request) (caller, bool) {
	if endpoint.Authorized(r, d.token) {
		return caller{}, true
	}
	for _, c := range r.CookiesNamed(SessionCookie) {
		if s, ok := d.sessions.use(c.Value); ok {
			return caller{id: c.Value, s: s}, true
		}
	}
	return caller{}, false
}

// mayChange checks a state-changing request. A session's must come from
// the dashboard's origin with the session's CSRF token. A bearer's needs
// neither (a browser never adds the header by itself, and a cross-origin
// page that would set it must pass a CORS preflight the dashboard never
// grants), but one naming another origin is refused all the same.
func (c caller) mayChange(r *http.Request) error {
	if c.id != "" {
		return checkCSRF(r, c.s)
	}
	if err := sameOrigin(r); err == errCrossOrigin {
		return err
	}
	return nil
}

// login shows the form, and on POST, when the token is right, opens a
// session and sets its cookie. A script can log in the same way (curl -c
// jar --data-urlencode token@<token file>): the token is trimmed of
// surrounding white space.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		d.render(w, "login.html", map[string]any{"Failed": false})
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	// No session yet, so no CSRF token: the token in the form is the
	// credential. A browser's login from another origin is refused.
	if err := sameOrigin(r); err == errCrossOrigin {
		d.log.Warn("dashboard: login refused", "origin", r.Header.Get("Origin"), "referer", r.Header.Get("Referer"), "reason", err)
		http.Error(w, "procq: refused: "+err.Error(), http.StatusForbidden)
		return
	}
	tok := strings.TrimSpace(r.PostFormValue("token"))
	if tok == "" || subtle.ConstantTimeCompare([]byte(tok), d.token) != 1 {
		w.WriteHeader(http.StatusUnauthorized)
		d.render(w, "login.html", map[string]any{"Failed": true})
		return
	}
	for _, c := range r.CookiesNamed(SessionCookie) { // a fresh id at each login
		d.sessions.revoke(c.Value)
	}
	http.SetCookie(w, sessionCookie(r, d.sessions.create()))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// shownDead is how many dead letters the page lists, the newest.
const shownDead = 100

// view is what the templates render.
type view struct {
	*ops.Status
	Spark     map[string]string // per queue: the throughput sparkline's SVG points
	Dead      []ops.DeadLetter  // the newest, up to shownDead
	DeadTotal uint64
	Err       string
	Flash     string
	CSRF      string // the session's CSRF token, for the forms
	Now       time.Time
	Refresh   int // ms

	// QueueSchedules counts each queue's periodic schedules; DelayedTotal
	// the delayed tasks and items not fired, of which Status.Delayed
	// lists up to schedule.MaxPending.
	QueueSchedules map[string]int
	DelayedTotal   uint64
}

func (d *Dashboard) page(w http.ResponseWriter, c caller, name string) {
	v := d.view()
	v.CSRF = c.s.csrf
	if c.id != "" && name == "page.html" {
		v.Flash = d.sessions.takeFlash(c.id)
	}
	d.render(w, name, v)
}

func (d *Dashboard) render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		d.log.Warn("dashboard: render", "page", name, "error", err)
	}
}

// events streams the page body as a server-sent event every second, until
// the browser goes away or its session ends.
func (d *Dashboard) events(w http.ResponseWriter, r *http.Request, c caller) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	t := time.NewTicker(d.every)
	defer t.Stop()
	for {
		if c.id != "" && !d.sessions.alive(c.id) {
			return // logged out or expired: the script finds the login page
		}
		v := d.view()
		v.CSRF = c.s.csrf
		var b strings.Builder
		err := pages.ExecuteTemplate(&b, "body", v)
		if err != nil {
			d.log.Warn("dashboard: render", "error", err)
			return
		}
		fmt.Fprint(w, "event: body\n")
		for _, line := range strings.Split(b.String(), "\n") {
			fmt.Fprintf(w, "data: %s\n", line)
		}
		fmt.Fprint(w, "\n")
		flusher.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

func (d *Dashboard) requeue(w http.ResponseWriter, r *http.Request, c caller) {
	idText := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/dead/"), "/requeue")
	id, err := strconv.ParseUint(idText, 10, 64)
	if err != nil {
		http.Error(w, "bad dead letter id", http.StatusBadRequest)
		return
	}
	dl, err := ops.OpenDeadLetters(r.Context(), d.js)
	flash := ""
	if err == nil {
		var seq uint64
		seq, err = dl.Requeue(r.Context(), id)
		flash = fmt.Sprintf("Dead letter %d requeued as task %d.", id, seq)
	}
	if err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, ops.ErrNoDeadLetter) {
			status = http.StatusNotFound
		}
		d.log.Warn("dashboard: requeue", "id", id, "error", err)
		http.Error(w, err.Error(), status)
		return
	}
	d.log.Info("dashboard: dead letter requeued", "id", id)
	d.changed(w, r, c, http.StatusOK, flash)
}

// validTaskID reports whether id may be a delayed task's id in a cancel
// request: the wire format's rule, 1 to 64 letters, digits, '-' or '_'
// (procq's own are 22 letters and digits).
func validTaskID(id string) bool { return task.ValidName(id) == nil }

// cancel removes a delayed task that has not fired (schedule.CancelID).
// One that fired meanwhile is no error for a session: its flash says so;
// an API client gets 409.
func (d *Dashboard) cancel(w http.ResponseWriter, r *http.Request, c caller) {
	id, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/delayed/"), "/cancel")
	if !ok || !validTaskID(id) {
		http.Error(w, "bad delayed task id", http.StatusBadRequest)
		return
	}
	err := schedule.CancelID(r.Context(), d.js, id)
	switch {
	case errors.Is(err, schedule.ErrFired):
		d.log.Info("dashboard: delayed task not cancelled: it had fired already", "id", id)
		d.changed(w, r, c, http.StatusConflict, "Delayed task "+id+" had fired already.")
	case err != nil:
		d.log.Warn("dashboard: cancel", "id", id, "error", err)
		http.Error(w, err.Error(), http.StatusBadGateway)
	default:
		d.log.Info("dashboard: delayed task cancelled", "id", id)
		d.changed(w, r, c, http.StatusOK, "Delayed task "+id+" cancelled.")
	}
}

// cancelInput cancels one input of a running map (POST /maps/ID/cancel
// with the form's index), as "broker task cancel ID.INDEX" does
// (ops.CancelTask): the map's producer decides. A task finished or
// unknown is no error for a session: its flash says so; an API client
// gets 409 or 404.
func (d *Dashboard) cancelInput(w http.ResponseWriter, r *http.Request, c caller) {
	id, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/maps/"), "/cancel")
	index, err := strconv.Atoi(r.FormValue("index"))
	if !ok || task.ValidName(id) != nil || err != nil || index < 0 {
		http.Error(w, "bad map id or input index", http.StatusBadRequest)
		return
	}
	tid := protocol.TaskID(id, index)
	err = ops.CancelTask(r.Context(), d.js, tid)
	switch {
	case errors.Is(err, protocol.ErrFinished):
		d.changed(w, r, c, http.StatusConflict, fmt.Sprintf("Input #%d of map %s had finished already.", index, id))
	case errors.Is(err, protocol.ErrNoTask):
		d.changed(w, r, c, http.StatusNotFound, fmt.Sprintf("No input #%d of a running map %s.", index, id))
	case err != nil:
		d.log.Warn("dashboard: cancel", "task_id", tid, "error", err)
		http.Error(w, err.Error(), http.StatusBadGateway)
	default:
		d.log.Info("dashboard: task cancelled", "task_id", tid)
		d.changed(w, r, c, http.StatusOK, fmt.Sprintf("Input #%d of map %s cancelled.", index, id))
	}
}

// pauseOrResume pauses a task queue until resumed (POST
// /queue/NAME/pause) or ends its pause (POST /queue/NAME/resume), as
// broker queue pause and resume do (ops.PauseQueue, ops.ResumeQueue). An
// unknown queue is no error for a session: its flash says so; an API
// client gets 404.
func (d *Dashboard) pauseOrResume(w http.ResponseWriter, r *http.Request, c caller) {
	rest := strings.TrimPrefix(r.URL.Path, "/queue/")
	i := strings.LastIndexByte(rest, '/')
	if i < 0 { // "/queue/pause": no name
		http.Error(w, "bad queue name", http.StatusBadRequest)
		return
	}
	name, action := rest[:i], rest[i+1:] // the route ends in /pause or /resume
	if err := task.ValidName(name); err != nil {
		http.Error(w, "bad queue name", http.StatusBadRequest)
		return
	}
	var err error
	done := "paused"
	if action == "pause" {
		err = ops.PauseQueue(r.Context(), d.js, name, time.Now().Add(ops.Forever))
	} else {
		done = "resumed"
		err = ops.ResumeQueue(r.Context(), d.js, name)
	}
	switch {
	case errors.Is(err, ops.ErrNoQueue):
		d.log.Info("dashboard: queue not "+done+": no such queue", "queue", name)
		d.changed(w, r, c, http.StatusNotFound, "No queue "+name+".")
	case err != nil:
		d.log.Warn("dashboard: "+action, "queue", name, "error", err)
		http.Error(w, err.Error(), http.StatusBadGateway)
	default:
		d.log.Info("dashboard: queue "+done, "queue", name)
		d.changed(w, r, c, http.StatusOK, "Queue "+name+" "+done+".")
	}
}

// pausedForever reports whether a queue paused until until (nil: not
// paused) is paused until resumed: a pause of ops.Forever, as broker
// status tells it.
func pausedForever(until *time.Time, now time.Time) bool {
	return until != nil && until.Sub(now) > ops.Forever/2
}

// pausedText says a queue's pause: "paused until resumed", or "paused
// until 2006-01-02 15:04:05 UTC (in 42m10s)"; "" when it is not paused.
func pausedText(until *time.Time, now time.Time) string {
	switch {
	case until == nil:
		return ""
	case pausedForever(until, now):
		return "paused until resumed"
	}
	return "paused until " + until.UTC().Format("2006-01-02 15:04:05") + " UTC (" + in(*until, now) + ")"
}

// changed answers a state-changing request that was carried out (or
// found nothing left to do): it reads the broker's state again, so that
// the page shows the change, then sends a session back to the page with
// flash, or answers an API client (bearer) with flash as text and code.
func (d *Dashboard) changed(w http.ResponseWriter, r *http.Request, c caller, code int, flash string) {
	d.refresh(r.Context())
	if c.id == "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		fmt.Fprintln(w, flash)
		return
	}
	d.sessions.setFlash(c.id, flash)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// age is d as a person reads it: 3s, 4m12s, 2h5m, 3d4h.
func age(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

// in is how long until t, as a person reads it: "in 4m12s", or "now"
// when t is less than a second away or past.
func in(t, now time.Time) string {
	d := t.Sub(now)
	if d < time.Second {
		return "now"
	}
	return "in " + age(d)
}

func progressText(m ops.MapStatus) string {
	if m.Total < 0 {
		return fmt.Sprintf("%d of %d+ submitted", m.Done, m.Submitted)
	}
	return fmt.Sprintf("%d of %d", m.Done, m.Total)
}

func progressPercent(m ops.MapStatus) int {
	n := m.Total
	if n < 0 {
		n = m.Submitted
	}
	if n <= 0 {
		return 0
	}
	return int(100 * m.Done / n)
}

func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// sample adds each queue's throughput (task messages its consumers ran
// per second since the last sample, from their heartbeats' counts) to its
// history, at most once a second, and returns each queue's sparkline: SVG
// points in a 120x28 box, the oldest sample at the left.
func (d *Dashboard) sample(st *ops.Status) map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if dt := st.Time.Sub(d.sampled); dt >= d.every*9/10 {
		done := map[string]map[string]int64{} // queue -> consumer -> done
		for _, p := range st.Consumers {
			if done[p.Queue] == nil {
				done[p.Queue] = map[string]int64{}
			}
			done[p.Queue][p.Name+"/"+strconv.Itoa(p.PID)] = p.Done
		}
		for _, q := range st.Queues {
			var ran int64
			for who, n := range done[q.Name] {
				if before, ok := d.done[q.Name][who]; ok && n > before {
					ran += n - before
				}
			}
			if !d.sampled.IsZero() {
				rate := int64(float64(ran) / dt.Seconds())
				h := append(d.history[q.Name], rate)
				d.history[q.Name] = h[max(len(h)-120, 0):]
			}
		}
		d.sampled, d.done = st.Time, done
	}
	out := map[string]string{}
	for name, h := range d.history {
		top := int64(1)
		for _, v := range h {
			top = max(top, v)
		}
		var b strings.Builder
		for i, v := range h { // spread over the width, the newest at the right
			x := 120.0
			if len(h) > 1 {
				x = 120 * float64(i) / float64(len(h)-1)
			}
			fmt.Fprintf(&b, "%.1f,%.1f ", x, 27-26*float64(v)/float64(top))
		}
		out[name] = b.String()
	}
	return out
}
