package protocol

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The reads and writes of the protocol's records that both sides share,
// each in one place.

// ReadRun reads queue's run record from the runs bucket; a queue that
// never had a run gives the zero record and no error.
func ReadRun(ctx context.Context, runs jetstream.KeyValue, queue string) (RunRecord, error) {
	var rec RunRecord
	e, err := runs.Get(ctx, queue)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return rec, nil
	}
	if err != nil {
		return rec, fmt.Errorf("run record of %s: %w", queue, err)
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return rec, fmt.Errorf("run record of %s: %w", queue, err)
	}
	return rec, nil
}

// MapLeaseKey is the key of a running map's lease in the runs bucket.
func MapLeaseKey(queue, id string) string { return queue + ".map." + id }

// ParseMapLeaseKey returns the queue and the map of a map lease's key; ok
// is false for a queue's run record.
func ParseMapLeaseKey(key string) (queue, id string, ok bool) {
	return strings.Cut(key, ".map.")
}

// Count is how many messages s holds on the subjects filter matches.
func Count(ctx context.Context, s jetstream.Stream, filter string) (uint64, error) {
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, nil
}

// BrokerNow is the broker's clock: when the leader of the named stream
// answered a request for its state. Ages of what that stream stores
// (a key's Created) are measured against it, never against this host's
// clock.
func BrokerNow(ctx context.Context, js jetstream.JetStream, stream string) (time.Time, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return time.Time{}, fmt.Errorf("read the broker's clock: %w", err)
	}
	return s.CachedInfo().TimeStamp, nil
}

// Heartbeat keeps a record alive in a bucket whose keys expire, or that
// others judge by age: a consumer's presence, a map's lease.
type Heartbeat struct {
	KV  jetstream.KeyValue
	Key string
	// Every is the time between two writes; each write is bounded by it.
	Every time.Duration
	// Grace bounds the removal of the key when the heartbeat stops.
	Grace time.Duration
	// What names the record in the log.
	What string
	Log  *slog.Logger
}

// Run writes value() under the key now and every Every until ctx ends,
// then removes the key. A write that fails is logged and tried again at
// the next beat: a beat missed is no error.
func (h Heartbeat) Run(ctx context.Context, value func() any) {
	t := time.NewTicker(h.Every)
	defer t.Stop()
	for {
		val, _ := json.Marshal(value())
		pctx, cancel := context.WithTimeout(ctx, h.Every)
		if _, err := h.KV.Put(pctx, h.Key, val); err != nil && ctx.Err() == nil {
			h.Log.InfoContext(ctx, h.What+" not refreshed", "key", h.Key, "error", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.Grace)
			_ = h.KV.Purge(dctx, h.Key)
			cancel()
			return
		case <-t.C:
		}
	}
}
