package cli

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/procq/procq/config"
)

// A log file Logger creates is 0600 and a log dir it creates 0700, parents
// included; an existing dir keeps its mode.
func TestLoggerCreatesPrivateFiles(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "a", "logs")
	logger, closer, err := Logger("consumer", "C-1", config.Log{Dir: dir, Level: "info", StderrLevel: "error"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("hello")
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{
		filepath.Join(dir, "consumer-C-1.log"): 0o600,
		dir:                                    0o700 | os.ModeDir,
		filepath.Join(base, "a"):               0o700 | os.ModeDir,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "consumer-C-1.log"))
	if err != nil || !strings.Contains(string(b), "msg=hello") {
		t.Errorf("log file: %q, %v", b, err)
	}

	// A dir that exists keeps its mode; the file in it is still 0600.
	shared := filepath.Join(base, "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	_, closer, err = Logger("broker", "", config.Log{Dir: shared, Level: "info", StderrLevel: "error"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	closer.Close()
	if fi, _ := os.Stat(shared); fi.Mode().Perm() != 0o755 {
		t.Errorf("existing dir: mode %v, want 0755 kept", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(filepath.Join(shared, "broker.log")); fi.Mode().Perm() != 0o600 {
		t.Errorf("broker.log: mode %v, want 0600", fi.Mode().Perm())
	}
}
