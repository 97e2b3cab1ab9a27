package producer

import "syscall"

// childAttr makes a child get SIGTERM when the producer dies, so no consumer
// is orphaned by a crashed producer.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// pidAlive reports whether a process with pid runs on this host.
func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}
