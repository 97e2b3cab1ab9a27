package netfault

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Proxies are toxiproxy TCP proxies run in this process: each a listener
// that forwards to an upstream address, with toxics (latency, jitter, a
// stall) added and removed while connections run through it.
type Proxies struct {
	t      testing.TB
	server *toxiproxy.ApiServer
	all    []*Proxy
}

// Proxy is one link through toxiproxy.
type Proxy struct {
	p *toxiproxy.Proxy
	t testing.TB
}

// NewProxies starts an in-process toxiproxy; t.Cleanup stops its proxies.
func NewProxies(t testing.TB) *Proxies {
	ps := &Proxies{t: t, server: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.New(io.Discard))}
	t.Cleanup(func() {
		for _, p := range ps.all {
			p.p.Stop()
		}
	})
	return ps
}

// Add starts a proxy listening on listen (host:port; port 0 picks one)
// forwarding to upstream.
func (ps *Proxies) Add(name, listen, upstream string) *Proxy {
	ps.t.Helper()
	p := toxiproxy.NewProxy(ps.server, name, listen, upstream)
	if err := p.Start(); err != nil {
		ps.t.Fatalf("netfault: proxy %s %s -> %s: %v", name, listen, upstream, err)
	}
	px := &Proxy{p: p, t: ps.t}
	ps.all = append(ps.all, px)
	return px
}

// Addr is where the proxy listens (host:port).
func (p *Proxy) Addr() string { return p.p.Listen }

// Latency delays every chunk each way by ms milliseconds, give or take
// jitter ms.
func (p *Proxy) Latency(ms, jitter int) {
	p.t.Helper()
	for _, dir := range []string{"upstream", "downstream"} {
		p.add(fmt.Sprintf(`{"name":"latency_%s","type":"latency","stream":%q,"attributes":{"latency":%d,"jitter":%d}}`, dir, dir, ms, jitter))
	}
}

// Stall stops all data through the proxy both ways without closing any
// connection (toxiproxy's timeout toxic with timeout 0); new connections
// are accepted and stall too.
func (p *Proxy) Stall() {
	p.t.Helper()
	for _, dir := range []string{"upstream", "downstream"} {
		p.add(fmt.Sprintf(`{"name":"stall_%s","type":"timeout","stream":%q,"attributes":{"timeout":0}}`, dir, dir))
	}
}

// Clear removes every toxic: data flows again (a stalled connection
// resumes with what it held).
func (p *Proxy) Clear() {
	p.p.Toxics.ResetToxics(context.Background())
}

func (p *Proxy) add(js string) {
	p.t.Helper()
	if _, err := p.p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
		p.t.Fatalf("netfault: proxy %s: toxic %s: %v", p.p.Name, js, err)
	}
}
