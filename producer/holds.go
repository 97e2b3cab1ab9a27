package producer

import (
	"bufio"
	"io"
	"sync"
)

// holdSet reads what a spawned consumer reports on its holds pipe: a line
// "+<ack subject>" for each message it takes and "-<ack subject>" for each
// it settles. When the child dies, what is left is what it held.
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
			line := sc.Text()
			if len(line) < 2 {
				continue
			}
			h.mu.Lock()
			switch line[0] {
			case '+':
				h.held[line[1:]] = struct{}{}
			case '-':
				delete(h.held, line[1:])
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
