// Package endpoint serves procq's HTTP endpoints (a consumer's metrics,
// the broker's metrics, NATS monitoring and the dashboard): each binds
// loopback unless its address names another host, and requires the
// broker's token: as a bearer header here, through a login session in the
// dashboard (package ops/dashboard), never in a cookie.
package endpoint

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// RequireToken serves h only to requests that carry token as
// "Authorization: Bearer <token>" (Prometheus' bearer credentials, curl
// -H). Anything else gets 401. A cookie is no credential here: browsers
// send a host's cookies to each of its ports, so the token must never be
// one.
func RequireToken(token string, h http.Handler) http.Handler {
	if token == "" {
		panic("endpoint.RequireToken: empty token") // a bug: every endpoint has one
	}
	want := []byte(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if Authorized(r, want) {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="procq"`)
		http.Error(w, "procq: the broker token is required (Authorization: Bearer <token>)", http.StatusUnauthorized)
	})
}

// Authorized reports whether r carries the token want as a bearer header,
// compared in constant time.
func Authorized(r *http.Request, want []byte) bool {
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "Bearer ") {
		return false
	}
	got := strings.TrimPrefix(auth, "Bearer ")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), want) == 1
}

// Loopback is addr with an empty host made 127.0.0.1: an endpoint binds
// every interface only when its address says so (0.0.0.0:9464).
func Loopback(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// TLSFiles are an endpoint's certificate and key; with them it serves
// HTTPS.
type TLSFiles struct{ Cert, Key string }

// Serve serves h at addr (see Loopback; port 0 picks a free one) until
// ctx ends, then shuts down within 5 s, over HTTPS where tlsFiles names
// a certificate. h checks the token itself (RequireToken, or the
// dashboard's login). It returns the endpoint's base URL
// (http://host:port or https://host:port) once it listens; what names the
// endpoint in the log.
func Serve(ctx context.Context, addr string, h http.Handler, tlsFiles TLSFiles, what string, logger *slog.Logger) (string, error) {
	addr, err := Loopback(addr)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	var tc *tls.Config
	if tlsFiles.Cert != "" {
		cert, err := tls.LoadX509KeyPair(tlsFiles.Cert, tlsFiles.Key)
		if err != nil {
			return "", fmt.Errorf("%s: certificate %s, key %s: %w", what, tlsFiles.Cert, tlsFiles.Key, err)
		}
		tc = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	scheme := "http://"
	if tc != nil {
		ln, scheme = tls.NewListener(ln, tc), "https://"
	}
	// Requests end with ctx too: the dashboard's event streams would
	// outlive a graceful shutdown otherwise.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	bound := scheme + ln.Addr().String()
	logger.Info("serving "+what, "url", bound)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error(what+" stopped", "error", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			_ = srv.Close()
		}
	}()
	return bound, nil
}
