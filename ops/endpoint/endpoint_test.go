package endpoint

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRequireToken(t *testing.T) {
	h := RequireToken("s3cret", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	for _, tt := range []struct {
		name   string
		set    func(*http.Request)
		status int
	}{
		{"no token", func(*http.Request) {}, http.StatusUnauthorized},
		{"wrong bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer s3cre") }, http.StatusUnauthorized},
		{"basic, not bearer", func(r *http.Request) { r.SetBasicAuth("x", "s3cret") }, http.StatusUnauthorized},
		{"empty bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer ") }, http.StatusUnauthorized},
		{"bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer s3cret") }, http.StatusTeapot},
		// The token in a cookie (the dashboard's login cookie held it once)
		// is no credential: every port of the host would receive it.
		{"token cookie", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "procq_token", Value: "s3cret"}) }, http.StatusUnauthorized},
	} {
		r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		tt.set(r)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.status {
			t.Errorf("%s: %d, want %d", tt.name, w.Code, tt.status)
		}
	}
}

func TestLoopback(t *testing.T) {
	for in, want := range map[string]string{
		":9464":          "127.0.0.1:9464",
		"127.0.0.1:0":    "127.0.0.1:0",
		"0.0.0.0:8080":   "0.0.0.0:8080", // said so: every interface
		"[::1]:9464":     "[::1]:9464",
		"localhost:9464": "localhost:9464",
	} {
		if got, err := Loopback(in); err != nil || got != want {
			t.Errorf("Loopback(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := Loopback("9464"); err == nil {
		t.Error("Loopback(\"9464\"): no error for a port alone")
	}
}
