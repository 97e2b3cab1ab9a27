package producer_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/procq/procq/producer"
)

// A child that exits 2 (bad usage or configuration) is not restarted, as
// a restart cannot help; one that exits 1 is, up to MaxRestarts; one that
// exits 3 (retired) is replaced without counting as a restart. The
// children here are shell scripts that count their starts in a file.
func TestSpawnExitCodes(t *testing.T) {
	for _, tt := range []struct {
		name       string
		exits      string // exit code of each start, in order
		restarts   int
		wantStarts int
		wantFailed bool
	}{
		{"exit 2 is not restarted", "2 0", 3, 1, true},
		{"exit 1 is restarted up to max_restarts", "1 1 1 1 0", 2, 3, true},
		{"exit 1 then success", "1 0", 3, 2, false},
		{"exit 3 is replaced, no restart counted", "3 3 3 0", 0, 4, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			count := filepath.Join(dir, "starts")
			script := filepath.Join(dir, "consumer")
			body := "#!/bin/sh\necho start >> " + count + "\nn=$(wc -l < " + count + ")\n" +
				"set -- " + tt.exits + "\nshift $((n-1))\nexit ${1:-0}\n"
			if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
				t.Fatal(err)
			}
			g, err := producer.Spawn(context.Background(), producer.SpawnConfig{Path: script, Names: []string{"C-1"},
				MaxRestarts: tt.restarts, Stdout: &strings.Builder{}}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			err = g.Wait()
			var ce *producer.ChildError
			if failed := errors.As(err, &ce); failed != tt.wantFailed {
				t.Errorf("Wait: %v; want failed %v", err, tt.wantFailed)
			}
			b, _ := os.ReadFile(count)
			if starts := strings.Count(string(b), "start"); starts != tt.wantStarts {
				t.Errorf("%d starts, want %d", starts, tt.wantStarts)
			}
		})
	}
}
