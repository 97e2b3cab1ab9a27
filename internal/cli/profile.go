package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/procq/procq/config"
)

// EnvCPUProfile names a file a procq executable writes its CPU profile to,
// from start to exit, for `go tool pprof`. A "%p" in it becomes the process
// id, so that a producer and the consumers it spawns, which inherit the
// environment, write one profile each.
const EnvCPUProfile = config.EnvCPUProfile

// startProfile starts the CPU profile EnvCPUProfile asks for, if any, and
// returns what stops it. A profile that cannot start is said on stderr and
// the command runs without it.
func startProfile(stderr io.Writer) (stop func()) {
	path := os.Getenv(EnvCPUProfile)
	if path == "" {
		return func() {}
	}
	path = filepath.Clean(strings.ReplaceAll(path, "%p", strconv.Itoa(os.Getpid())))
	f, err := os.Create(path)
	if err == nil {
		if err = pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: no CPU profile: %v\n", EnvCPUProfile, err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", EnvCPUProfile, err)
		}
	}
}
