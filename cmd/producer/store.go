package main

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/procq/procq/producer"
)

// withStoreFacts adds, to an error that says the broker cannot store
// results, how full the filesystem of the store dir is when this process
// hosts the broker: the usual cause is a full disk.
func (s *session) withStoreFacts(err error) error {
	if s.srv == nil || !errors.Is(err, producer.ErrResultsNotStored) {
		return err
	}
	var st syscall.Statfs_t
	if serr := syscall.Statfs(s.cfg.Broker.StoreDir, &st); serr != nil {
		return err
	}
	free := st.Bavail * uint64(st.Bsize)
	size := st.Blocks * uint64(st.Bsize)
	return fmt.Errorf("%w\nstore dir %s: %s free of %s", err, s.cfg.Broker.StoreDir, mib(free), mib(size))
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
