package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// scanBatch is how many messages one batched read asks for.
const scanBatch = 256

// scan calls fn for each message on filter in s, oldest first, at most
// limit of them. With direct gets on the stream (PROCQ_SCHED has them) it
// reads scanBatch messages per request, so listing a thousand delayed
// tasks costs four requests, not a thousand; otherwise one per message.
func scan(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, filter string, limit int, fn func(*jetstream.RawStreamMsg)) error {
	info := s.CachedInfo()
	seq, n := uint64(1), 0
	for n < limit {
		var msgs []*jetstream.RawStreamMsg
		var err error
		if info != nil && info.Config.AllowDirect {
			msgs, err = directBatch(ctx, js.Conn(), info.Config.Name, seq, filter, min(limit-n, scanBatch))
		} else {
			var m *jetstream.RawStreamMsg
			if m, err = s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter)); err == nil {
				msgs = []*jetstream.RawStreamMsg{m}
			}
		}
		if errors.Is(err, jetstream.ErrMsgNotFound) || (err == nil && len(msgs) == 0) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, m := range msgs {
			fn(m)
			seq = m.Sequence + 1
			n++
		}
	}
	return nil
}

// directWait bounds the wait for one batched read's next message.
const directWait = 5 * time.Second

// directBatch reads up to batch messages on filter from seq on with one
// batched direct get: the broker answers each message, then an
// end-of-batch status (204), or 404 when none matched.
func directBatch(ctx context.Context, nc *nats.Conn, stream string, seq uint64, filter string, batch int) ([]*jetstream.RawStreamMsg, error) {
	req, err := json.Marshal(struct {
		Seq     uint64 `json:"seq"`
		NextFor string `json:"next_by_subj"`
		Batch   int    `json:"batch"`
	}{seq, filter, batch})
	if err != nil {
		return nil, err
	}
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+stream, inbox, req); err != nil {
		return nil, err
	}
	var out []*jetstream.RawStreamMsg
	for range batch + 1 {
		wctx, cancel := context.WithTimeout(ctx, directWait)
		m, err := sub.NextMsgWithContext(wctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("read %s (batched, from #%d): %w", stream, seq, err)
		}
		switch status := m.Header.Get("Status"); status {
		case "":
		case "204": // end of the batch
			return out, nil
		case "404", "408":
			return out, nil
		default:
			return nil, fmt.Errorf("read %s (batched, from #%d): status %s %s", stream, seq, status, m.Header.Get("Description"))
		}
		sm := &jetstream.RawStreamMsg{Subject: m.Header.Get(jetstream.SubjectHeader), Data: m.Data, Header: m.Header}
		if sm.Sequence, err = strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64); err != nil {
			return nil, fmt.Errorf("read %s: a message without its sequence", stream)
		}
		sm.Time, _ = time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.TimeStampHeaer))
		out = append(out, sm)
	}
	return out, nil
}
