package link_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/procq/procq/broker"
	"github.com/procq/procq/internal/natstest"
	"github.com/procq/procq/link"
)

// tlsBroker starts a broker whose client port requires TLS with certs'
// node certificate, verifying client certificates when verify is set.
func tlsBroker(t *testing.T, certs *natstest.Certs, verify bool) string {
	t.Helper()
	srv, err := broker.Start(broker.Config{URL: "tls://127.0.0.1:0", StoreDir: t.TempDir(), Token: natstest.Token,
		TLS: &broker.TLSConfig{Cert: certs.Cert, Key: certs.Key, CA: certs.CA, VerifyClients: verify}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv.ClientURL()
}

// A client that cannot be let in is told at once, in one line, which
// setting to change; it never waits out the connect timeout retrying
// (that would end in ErrUnreachable).
func TestConnectRefusalsAreFinalAndSaid(t *testing.T) {
	certs := natstest.WriteCerts(t)
	url := tlsBroker(t, certs, false)
	mtlsURL := tlsBroker(t, certs, true)
	plain := natstest.Start(t)
	tests := []struct {
		name string
		cfg  link.Config
		want string
	}{
		{"plaintext client, TLS broker", link.Config{URL: url, Token: natstest.Token},
			"the broker's certificate is not signed by the system's roots (broker.tls.ca is empty)"},
		{"unknown CA", link.Config{URL: url, Token: natstest.Token, TLS: &link.TLSFiles{CA: certs.OtherCA}},
			"the broker's certificate is not signed by broker.tls.ca " + certs.OtherCA},
		{"localhost, a name in the certificate", link.Config{URL: strings.Replace(url, "127.0.0.1", "localhost", 1), Token: natstest.Token,
			TLS: &link.TLSFiles{CA: certs.CA}}, ""}, // localhost is in the certificate: it connects (see below)
		{"no client certificate for mutual TLS", link.Config{URL: mtlsURL, Token: natstest.Token, TLS: &link.TLSFiles{CA: certs.CA}},
			"the broker requires a client certificate"},
		{"TLS client, plaintext broker", link.Config{URL: plain.URL, Token: natstest.Token, TLS: &link.TLSFiles{CA: certs.CA}},
			"broker.tls is set but the broker does not offer TLS"},
		{"wrong token", link.Config{URL: url, Token: "nope", TLS: &link.TLSFiles{CA: certs.CA}},
			"the broker refused broker.token"},
		{"missing token file", link.Config{URL: url, TokenFile: filepath.Join(t.TempDir(), "token"), TLS: &link.TLSFiles{CA: certs.CA}},
			"no token: broker.token is empty and broker.token_file "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Timeout = 20 * time.Second
			nc, err := link.Connect(context.Background(), tt.cfg, slog.New(slog.DiscardHandler))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("connect: %v", err)
				}
				nc.Close()
				return
			}
			if err == nil {
				nc.Close()
				t.Fatalf("connected; want refused saying %q", tt.want)
			}
			if errors.Is(err, link.ErrUnreachable) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err %q: want one line saying %q, not a wait for the broker", err, tt.want)
			}
		})
	}
}

// A certificate that expired, or that names another host, is refused
// saying so.
func TestConnectRefusesBadBrokerCertificates(t *testing.T) {
	certs := natstest.WriteCerts(t)
	for _, tt := range []struct {
		name, cert, key, want string
	}{
		{"expired", certs.Expired, certs.ExpiredKey, "the broker's certificate has expired or is not valid yet"},
		{"another host", certs.WrongHost, certs.WrongHostKey, "the broker's certificate is not for this host (broker.url)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := broker.Start(broker.Config{URL: "tls://127.0.0.1:0", StoreDir: t.TempDir(), Token: natstest.Token,
				TLS: &broker.TLSConfig{Cert: tt.cert, Key: tt.key, CA: certs.CA}}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Shutdown()
			_, err = link.Connect(context.Background(), link.Config{URL: srv.ClientURL(), Token: natstest.Token,
				TLS: &link.TLSFiles{CA: certs.CA}, Timeout: 20 * time.Second}, slog.New(slog.DiscardHandler))
			if err == nil || errors.Is(err, link.ErrUnreachable) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v: want at once %q", err, tt.want)
			}
		})
	}
}

// Mutual TLS: a client with the CA and its certificate gets in.
func TestConnectMutualTLS(t *testing.T) {
	certs := natstest.WriteCerts(t)
	url := tlsBroker(t, certs, true)
	nc, err := link.Connect(context.Background(), link.Config{URL: url, Token: natstest.Token,
		TLS: &link.TLSFiles{CA: certs.CA, Cert: certs.Cert, Key: certs.Key}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if !nc.TLSRequired() {
		t.Error("the connection is not TLS")
	}
}
