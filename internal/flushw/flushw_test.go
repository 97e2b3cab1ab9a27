package flushw

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingWriter counts the writes that reach it.
type countingWriter struct {
	mu     sync.Mutex
	writes int
	buf    bytes.Buffer
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return c.buf.Write(p)
}

func (c *countingWriter) state() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes, c.buf.String()
}

// Ten thousand lines reach the writer in a handful of writes, whole and
// in order; a last line is written out by the delay without a Flush.
func TestWriterBatchesAndShowsAWaitingLine(t *testing.T) {
	w := &countingWriter{}
	f := New(w, time.Hour) // only a full buffer writes out here
	var want strings.Builder
	for i := range 10000 {
		line := strings.Repeat("x", i%50) + "\n"
		want.WriteString(line)
		if _, err := f.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	writes, got := w.state()
	if got != want.String() {
		t.Fatalf("the writer got %d bytes, want the %d written, in order", len(got), want.Len())
	}
	if max := want.Len()/flushBuffer + 2; writes > max {
		t.Errorf("%d writes for %d bytes, want at most %d", writes, want.Len(), max)
	}
	f = New(w, 50*time.Millisecond)
	if _, err := f.Write([]byte("waiting\n")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, got := w.state(); strings.HasSuffix(got, "waiting\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a waiting line was not written out within 5s of a 50ms delay")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
