package pipe

// Abandon stops the end as a killed process would: no end-of-file, no
// release, no more claim refreshes.
func (c *Conn) Abandon() {
	if !c.closed.CompareAndSwap(false, true) {
		return
	}
	close(c.lease)
	c.wg.Wait()
	c.msgs.Stop()
}
