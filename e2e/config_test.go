package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Bad configuration exits 2 with a message that names the key and the
// source, in every executable.
func TestBadConfigExitsTwo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		yaml    string
		env     []string
		args    []string
		exe     string
		wantErr []string
	}{
		{name: "typo section", exe: "producer", args: []string{"queue"},
			yaml: "consumer:\n  count: 2\n", wantErr: []string{"config.yaml", "consumer", "unknown key"}},
		{name: "typo key", exe: "consumer", yaml: "consumers:\n  cuont: 2\n",
			wantErr: []string{"config.yaml", "consumers.cuont", "unknown key"}},
		{name: "zero count", exe: "producer", args: []string{"queue"}, yaml: "consumers:\n  count: 0\n",
			wantErr: []string{"config.yaml", "consumers.count", "must be in [1, 1024], got 0"}},
		{name: "bad duration", exe: "broker", yaml: "pipe:\n  peer_timeout: soon\n",
			wantErr: []string{"config.yaml", "pipe.peer_timeout", "invalid duration"}},
		{name: "wrong type", exe: "consumer", yaml: "consumers:\n  concurrency: many\n",
			wantErr: []string{"config.yaml", "consumers.concurrency"}},
		{name: "bad url", exe: "producer", args: []string{"queue"}, env: []string{"PROCQ_BROKER_URL", "http://x:1"},
			wantErr: []string{"PROCQ_BROKER_URL", "broker.url", "scheme"}},
		{name: "env override names the variable", exe: "producer", args: []string{"queue"},
			env: []string{"PROCQ_CONSUMERS_COUNT", "-1"}, wantErr: []string{"environment PROCQ_CONSUMERS_COUNT", "consumers.count"}},
		{name: "flag names the flag", exe: "producer", args: []string{"queue", "--consumers", "0"},
			wantErr: []string{"flag --consumers", "consumers.count"}},
		{name: "missing explicit file", exe: "consumer", args: []string{"--config", "nope.yaml"},
			wantErr: []string{"nope.yaml"}},
		{name: "unknown flag", exe: "producer", args: []string{"queue", "--bogus"},
			wantErr: []string{"unknown flag: --bogus"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "nats://127.0.0.1:0").set(tt.env...)
			if tt.yaml != "" {
				if err := os.WriteFile(filepath.Join(e.dir, "config.yaml"), []byte(tt.yaml), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			p := e.start(tt.exe, tt.args...)
			p.mustExit(2, 20*time.Second)
			for _, w := range tt.wantErr {
				if !strings.Contains(p.stderr.String(), w) {
					t.Errorf("stderr %q does not contain %q", p.stderr, w)
				}
			}
		})
	}
}

// Each executable says its version and the Go it was built with, and
// exits 0.
func TestVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "nats://127.0.0.1:0")
	for _, exe := range []string{"broker", "producer", "consumer"} {
		p := e.start(exe, "--version")
		p.mustExit(0, 20*time.Second)
		if out := p.stdout.String(); !strings.HasPrefix(out, exe+" ") || !strings.Contains(out, "go1.") {
			t.Errorf("%s --version printed %q, want %q and the Go version", exe, out, exe+" <version> (...)")
		}
	}
}
