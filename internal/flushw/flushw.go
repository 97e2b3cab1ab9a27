// Package flushw buffers output written line by line, so that a million
// lines cost a few hundred writes, and still shows a line that waits.
package flushw

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// Writer buffers what is written line by line (a command's result
// lines, a consumer's reports to its producer), so that a million lines
// cost a few hundred writes instead of a million, and still shows a line
// that waits: the buffer is written out when it fills, when
// something has waited in it for the delay, and on Flush. It is safe for
// concurrent use (the producer's own lines and its children's share it).
type Writer struct {
	mu    sync.Mutex
	buf   *bufio.Writer
	delay time.Duration
	timer *time.Timer // armed while the buffer holds something
	err   error       // the first write error, kept for Flush
}

// flushBuffer is the buffer's size: the pipe buffer of most systems.
const flushBuffer = 64 << 10

// DefaultDelay is how long a line may wait in a Writer.
const DefaultDelay = 100 * time.Millisecond

// New buffers writes to w, none waiting longer than delay.
func New(w io.Writer, delay time.Duration) *Writer {
	return &Writer{buf: bufio.NewWriterSize(w, flushBuffer), delay: delay}
}

// Write buffers p.
func (f *Writer) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.buf.Write(p)
	if err != nil && f.err == nil {
		f.err = err
	}
	if f.buf.Buffered() > 0 && f.timer == nil {
		f.timer = time.AfterFunc(f.delay, func() { _ = f.Flush() })
	}
	return n, err
}

// Flush writes out what is buffered and returns the first write error.
func (f *Writer) Flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.timer != nil {
		f.timer.Stop()
		f.timer = nil
	}
	if err := f.buf.Flush(); err != nil && f.err == nil {
		f.err = err
	}
	return f.err
}
