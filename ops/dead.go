package ops

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/procq/procq/protocol"
)

// DeadLetter is one message of the dead-letter stream: a task (or a
// sentinel) that failed for good or could never run, with why.
type DeadLetter struct {
	// ID is its sequence in PROCQ_DEAD: what show, requeue and purge take.
	ID        uint64    `json:"id"`
	Queue     string    `json:"queue"`
	Reason    string    `json:"reason"`
	Kind      string    `json:"kind,omitempty"`
	Subject   string    `json:"subject"` // the original subject
	Delivered int       `json:"delivered"`
	Consumer  string    `json:"consumer,omitempty"`
	Time      time.Time `json:"time"`
	Trimmed   bool      `json:"trimmed,omitempty"` // its body was cut to fit: it cannot be requeued
	// Header and Body are the whole message (Show only).
	Header nats.Header `json:"header,omitempty"`
	Body   string      `json:"body,omitempty"`
}

// ErrNoDeadLetter is the error for an ID that is not a dead letter.
var ErrNoDeadLetter = errors.New("no such dead letter")

// DeadLetters reads the dead-letter stream.
type DeadLetters struct {
	js jetstream.JetStream
	st jetstream.Stream
}

// OpenDeadLetters opens the dead-letter stream; it fails when the broker
// has none yet.
func OpenDeadLetters(ctx context.Context, js jetstream.JetStream) (*DeadLetters, error) {
	st, err := js.Stream(ctx, protocol.DeadStream)
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	return &DeadLetters{js: js, st: st}, nil
}

func deadLetter(m *jetstream.RawStreamMsg, whole bool) DeadLetter {
	h := m.Header
	d := DeadLetter{ID: m.Sequence, Queue: strings.TrimPrefix(m.Subject, protocol.DeadPrefix+"."),
		Reason: h.Get(protocol.HeaderError), Kind: h.Get(protocol.HeaderKind), Subject: h.Get(protocol.HeaderSubject),
		Consumer: h.Get(protocol.HeaderConsumer), Time: m.Time.UTC(), Trimmed: h.Get(protocol.HeaderTrimmed) != ""}
	d.Delivered, _ = strconv.Atoi(h.Get(protocol.HeaderDelivered))
	if whole {
		d.Header, d.Body = h, string(m.Data)
	}
	return d
}

// List returns the dead letters, oldest first, of queue (every queue when
// empty).
func (d *DeadLetters) List(ctx context.Context, queue string) ([]DeadLetter, error) {
	out := []DeadLetter{}
	err := d.each(ctx, queue, func(m *jetstream.RawStreamMsg) error {
		out = append(out, deadLetter(m, false))
		return nil
	})
	return out, err
}

// Newest returns at most n dead letters, the newest, oldest first: the
// stream holds nothing but dead letters, so it walks back from its last
// message and reads no more than it shows.
func (d *DeadLetters) Newest(ctx context.Context, n int) ([]DeadLetter, error) {
	info, err := d.st.Info(ctx)
	if err != nil {
		return nil, err
	}
	out := []DeadLetter{}
	for seq := info.State.LastSeq; info.State.Msgs > 0 && seq >= info.State.FirstSeq && seq > 0 && len(out) < n; seq-- {
		m, err := d.st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted: requeued or purged
		}
		if err != nil {
			return nil, err
		}
		out = append(out, deadLetter(m, false))
	}
	slices.Reverse(out)
	return out, nil
}

// each calls fn with every dead letter of queue (every queue when empty).
func (d *DeadLetters) each(ctx context.Context, queue string, fn func(*jetstream.RawStreamMsg) error) error {
	filter := protocol.DeadPrefix + ".>"
	if queue != "" {
		filter = protocol.DeadSubject(queue)
	}
	info, err := d.st.Info(ctx)
	if err != nil {
		return err
	}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := d.st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil // none left at or after seq
		}
		if err != nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
		seq = m.Sequence
	}
	return nil
}

// Show returns the dead letter id, whole.
func (d *DeadLetters) Show(ctx context.Context, id uint64) (DeadLetter, error) {
	m, err := d.get(ctx, id)
	if err != nil {
		return DeadLetter{}, err
	}
	return deadLetter(m, true), nil
}

func (d *DeadLetters) get(ctx context.Context, id uint64) (*jetstream.RawStreamMsg, error) {
	m, err := d.st.GetMsg(ctx, id)
	if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && !strings.HasPrefix(m.Subject, protocol.DeadPrefix+".") {
		return nil, fmt.Errorf("%w: %d", ErrNoDeadLetter, id)
	}
	return m, err
}

// deadHeaders are what dead-lettering added; a requeued task drops them.
var deadHeaders = []string{protocol.HeaderError, protocol.HeaderSubject, protocol.HeaderConsumer, protocol.HeaderDelivered,
	protocol.HeaderTrimmed, protocol.HeaderOrigMsgID, protocol.HeaderUnanswered}

// Requeue puts the dead letter id's original message back on its original
// subject, with its original headers and body, then removes the dead
// letter: requeue first, delete once the new task is stored, so a failure
// between the two leaves a copy rather than nothing. The new task carries
// a fresh Nats-Msg-Id so that the broker does not drop it as a duplicate
// of the original. It returns the requeued task's stream sequence.
func (d *DeadLetters) Requeue(ctx context.Context, id uint64) (uint64, error) {
	m, err := d.get(ctx, id)
	if err != nil {
		return 0, err
	}
	if m.Header.Get(protocol.HeaderTrimmed) != "" {
		return 0, fmt.Errorf("dead letter %d: its body was cut to fit the broker's max payload (%s bytes): it cannot be requeued whole", id, m.Header.Get(protocol.HeaderTrimmed))
	}
	subject := m.Header.Get(protocol.HeaderSubject)
	if subject == "" {
		return 0, fmt.Errorf("dead letter %d: no %s header: its original subject is unknown", id, protocol.HeaderSubject)
	}
	msg := &nats.Msg{Subject: subject, Data: m.Data, Header: nats.Header{}}
	for k, vs := range m.Header {
		if protocol.BrokerSet(k) {
			continue
		}
		msg.Header[k] = vs
	}
	// A requeued fired task is a task of its own: its firing's claim
	// would take it for a second copy.
	msg.Header.Del(protocol.HeaderTaskID)
	orig := m.Header.Get(protocol.HeaderOrigMsgID)
	own := m.Header.Get(protocol.HeaderMsgID) // dead.<stream>.<the task's sequence>[.unanswered]
	for _, k := range deadHeaders {
		msg.Header.Del(k)
	}
	msg.Header.Del(protocol.HeaderMsgID)
	switch {
	case own != "":
		// One task, one requeue: a task whose answer was not stored has
		// two dead letters (the second marked Procq-Unanswered), and
		// requeuing both gives the task stream one id, kept once.
		msg.Header.Set(protocol.HeaderMsgID, cmp.Or(orig, "task")+".requeued."+strings.TrimSuffix(own, ".unanswered"))
	case orig != "":
		msg.Header.Set(protocol.HeaderMsgID, orig+".requeued."+strconv.FormatUint(id, 10))
	}
	ack, err := d.js.PublishMsg(ctx, msg)
	if err != nil {
		return 0, fmt.Errorf("dead letter %d: requeue on %s: %w (the dead letter is kept)", id, subject, err)
	}
	if err := d.st.DeleteMsg(ctx, id); err != nil && !gone(err) {
		return ack.Sequence, fmt.Errorf("dead letter %d: requeued as task %d, but not removed: %w", id, ack.Sequence, err)
	}
	return ack.Sequence, nil
}

// gone reports whether a delete failed because the message is gone
// already (requeued or purged meanwhile). The client wraps the server's
// "no message found" in ErrMsgDeleteUnsuccessful, as text.
func gone(err error) bool {
	return errors.Is(err, jetstream.ErrMsgNotFound) ||
		errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) && strings.HasSuffix(err.Error(), "no message found")
}

// Purge removes the dead letters of queue (every queue when empty) that
// are older than olderThan (every one when 0) and returns how many.
func (d *DeadLetters) Purge(ctx context.Context, queue string, olderThan time.Duration) (int, error) {
	if olderThan == 0 {
		filter := protocol.DeadPrefix + ".>"
		if queue != "" {
			filter = protocol.DeadSubject(queue)
		}
		before, err := d.count(ctx, filter)
		if err != nil {
			return 0, err
		}
		return int(before), d.st.Purge(ctx, jetstream.WithPurgeSubject(filter))
	}
	cutoff := time.Now().Add(-olderThan)
	var ids []uint64
	err := d.each(ctx, queue, func(m *jetstream.RawStreamMsg) error {
		if m.Time.Before(cutoff) {
			ids = append(ids, m.Sequence)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for i, id := range ids {
		if err := d.st.DeleteMsg(ctx, id); err != nil && !gone(err) {
			return i, err
		}
	}
	return len(ids), nil
}

func (d *DeadLetters) count(ctx context.Context, filter string) (uint64, error) {
	return protocol.Count(ctx, d.st, filter)
}

// Printable returns s made safe to print on a terminal: a dead letter's
// text (its reason, kind, subject, consumer, headers and body) comes from
// messages, and an escape sequence in it would otherwise reach the
// terminal raw (ESC ] 0 ; ... BEL retitles it, ESC [ 2 J clears it). Every
// control character (C0, DEL, C1) and every Unicode bidi control (U+202A
// to U+202E, U+2066 to U+2069, U+200E, U+200F, U+061C) is written as its
// escape in strconv.Quote's form: ESC as the four characters \x1b, BEL as
// \a, U+202E as \u202e; a byte that is not UTF-8 as \xNN. With keepLines,
// for free text, '\n' and '\t' stay as they are; without, for a one-line
// field such as a table cell, they are escaped too. Backslashes are not
// doubled: the result is for reading, not for parsing back.
func Printable(s string, keepLines bool) string {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if unsafeRune(r, n, keepLines) {
			break
		}
		i += n
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unsafeRune(r, n, keepLines):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// unsafeRune reports whether the rune r, n bytes long, is one Printable
// escapes.
func unsafeRune(r rune, n int, keepLines bool) bool {
	switch {
	case r == utf8.RuneError && n == 1: // not UTF-8
		return true
	case keepLines && (r == '\n' || r == '\t'):
		return false
	case r < 0x20, r >= 0x7f && r <= 0x9f: // C0, DEL, C1
		return true
	default:
		return bidiControl(r)
	}
}

// bidiControl reports whether r is a Unicode bidi control: the embeddings
// and overrides, the isolates and the marks, which reorder the text
// around them as it is shown.
func bidiControl(r rune) bool {
	return r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 || r == 0x200e || r == 0x200f || r == 0x061c
}

// PrintableJSON returns the JSON text b, as encoding/json writes it, with
// the characters that encoding/json leaves raw and Printable escapes (DEL,
// the C1 controls and the bidi controls) written as \u escapes. encoding/
// json escapes the C0 controls itself, and in valid JSON these others can
// stand only inside strings, so the result decodes to the very same value
// and prints safely on a terminal.
func PrintableJSON(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == 0x7f || r >= 0x80 && r <= 0x9f || bidiControl(r) {
			if out == nil {
				out = append(make([]byte, 0, len(b)+16), b[:i]...)
			}
			out = fmt.Appendf(out, `\u%04x`, r)
		} else if out != nil {
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	if out == nil {
		return b
	}
	return out
}
