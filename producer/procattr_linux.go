package producer

import (
	"bytes"
	"os"
	"strconv"
	"syscall"

	"github.com/procq/procq/protocol"
)

// childAttr makes a child get SIGHUP when the producer dies ("the process
// that controls you hung up"), so no consumer is orphaned by a crashed
// producer. SIGHUP, not SIGTERM: the kernel sends it as soon as the thread
// that started the child exits, which during a kill -9 is before the child
// is re-parented, so the child could not tell it from an ordinary stop.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: protocol.OrphanSignal}
}

// pidAlive reports whether a process with pid runs on this host; a zombie
// (dead, not yet reaped by its parent) does not.
func pidAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && err != syscall.EPERM {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // no /proc: trust kill
	}
	// The state follows the command name in parentheses: "1 (cmd) Z ...".
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z' && stat[i+2] != 'X'
	}
	return true
}
