package producer

import "syscall"

// childAttr makes a child get SIGTERM when the producer dies, so no consumer
// is orphaned by a crashed producer.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
