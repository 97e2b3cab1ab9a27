//go:build !linux

package producer

import "syscall"

func childAttr() *syscall.SysProcAttr { return nil }
