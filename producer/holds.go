package producer

import (
	"bufio"
	"io"
	"sync"

	"github.com/procq/procq/protocol"
)

// holdSet reads what a spawned consumer reports on its holds pipe
// (protocol.Hold lines). When the child dies, what is left is what it
// held.
type holdSet struct {
	mu   sync.Mutex
	held map[string]struct{}
	done chan struct{}
}

func readHolds(r io.ReadCloser) *holdSet {
	h := &holdSet{held: make(map[string]struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			hold, ok := protocol.ParseHold(sc.Text())
			if !ok {
				continue
			}
			h.mu.Lock()
			if hold.Taken {
				h.held[hold.Subject] = struct{}{}
			} else {
				delete(h.held, hold.Subject)
			}
			h.mu.Unlock()
		}
	}()
	return h
}

// wait returns what the child still held once its end of the pipe is
// closed (it exited); the reader goroutine has ended by then.
func (h *holdSet) wait() []string {
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.held))
	for s := range h.held {
		out = append(out, s)
	}
	return out
}
