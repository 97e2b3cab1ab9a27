// Package dashboard is the broker's web dashboard: server-rendered pages
// of the status snapshot and the dead letters, with their HTML, CSS and
// JavaScript embedded. Only the broker's side links it: a consumer
// process neither carries its assets nor parses its templates.
package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/procq/procq/ops"
	"github.com/procq/procq/ops/endpoint"
)

//go:embed web
var webFiles embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"age":      age,
	"since":    func(t time.Time, now time.Time) string { return age(now.Sub(t)) },
	"progress": progressText,
	"percent":  progressPercent,
	"short":    short,
}).ParseFS(webFiles, "web/*.html"))

// Dashboard is the web dashboard: live queues, consumers, maps in
// progress, pipes and dead letters with a requeue button. It is
// server-rendered HTML with a small script that swaps in the fresh page
// body every second from a server-sent event stream; the assets are in
// the binary. Every route but the login needs the token, as a bearer
// header or the login cookie.
type Dashboard struct {
	js    jetstream.JetStream
	token []byte
	log   *slog.Logger
	every time.Duration

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
	d := &Dashboard{js: js, token: []byte(token), log: logger, every: time.Second, history: map[string][]int64{}}
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
	v := view{Now: time.Now().UTC(), Refresh: int(d.every.Milliseconds())}
	st, err := ops.Snapshot(ctx, d.js)
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
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'")
	switch {
	case r.URL.Path == "/login":
		d.login(w, r)
		return
	case r.URL.Path == "/static/dashboard.css" || r.URL.Path == "/static/dashboard.js":
		http.ServeFileFS(w, r, webFiles, "web/"+strings.TrimPrefix(r.URL.Path, "/static/"))
		return
	case !endpoint.Authorized(r, d.token):
		w.WriteHeader(http.StatusUnauthorized)
		d.render(w, "login.html", map[string]any{"Failed": false})
		return
	}
	switch {
	case r.URL.Path == "/" && r.Method == http.MethodGet:
		d.page(w, r, "page.html")
	case r.URL.Path == "/body" && r.Method == http.MethodGet:
		d.page(w, r, "body")
	case r.URL.Path == "/events" && r.Method == http.MethodGet:
		d.events(w, r)
	case r.URL.Path == "/api/status" && r.Method == http.MethodGet:
		v := d.view()
		if v.Err != "" {
			http.Error(w, v.Err, http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v.Status)
	case strings.HasPrefix(r.URL.Path, "/dead/") && strings.HasSuffix(r.URL.Path, "/requeue") && r.Method == http.MethodPost:
		d.requeue(w, r)
	case r.URL.Path == "/logout" && r.Method == http.MethodPost:
		http.SetCookie(w, &http.Cookie{Name: endpoint.TokenCookie, Value: "", Path: "/", MaxAge: -1})
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	default:
		http.NotFound(w, r)
	}
}

// login shows the form, and on POST sets the token cookie when the token
// is right.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		d.render(w, "login.html", map[string]any{"Failed": false})
		return
	}
	tok := r.PostFormValue("token")
	probe := &http.Request{Header: http.Header{"Authorization": {"Bearer " + tok}}}
	if !endpoint.Authorized(probe, d.token) {
		w.WriteHeader(http.StatusUnauthorized)
		d.render(w, "login.html", map[string]any{"Failed": true})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: endpoint.TokenCookie, Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
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
	Now       time.Time
	Refresh   int // ms
}

func (d *Dashboard) page(w http.ResponseWriter, r *http.Request, name string) {
	v := d.view()
	v.Flash = r.URL.Query().Get("flash")
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
// the browser goes away.
func (d *Dashboard) events(w http.ResponseWriter, r *http.Request) {
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
		var b strings.Builder
		err := pages.ExecuteTemplate(&b, "body", d.view())
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

func (d *Dashboard) requeue(w http.ResponseWriter, r *http.Request) {
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
	d.refresh(r.Context()) // the page it redirects to shows the list without it
	http.Redirect(w, r, "/?flash="+url.QueryEscape(flash), http.StatusSeeOther)
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
