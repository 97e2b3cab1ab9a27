package producer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/protocol"
)

// subscribe starts reading the map's results with an ordered consumer.
func (m *mapping) subscribe(ctx context.Context) (<-chan jetstream.Msg, func(), error) {
	r := &resultsReader{m: m, subject: protocol.ResultSubject(m.id)}
	if err := r.open(ctx); err != nil {
		return nil, nil, err
	}
	ch := make(chan jetstream.Msg, 64)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(ch)
		r.run(ctx, ch, quit)
	})
	stop := func() {
		close(quit)
		(*r.it.Load()).Stop()
		wg.Wait()
	}
	return ch, stop, nil
}

// resultsBuffer is how many bytes of results the reader buffers.
const resultsBuffer = 4 << 20

// stallCheck is how long the results reader waits for a result before it
// asks the stream whether one is stored that its consumer does not
// deliver.
const stallCheck = 5 * time.Second

// resultsReader reads one map's results. The ordered consumer recovers by
// itself from a lost connection and missed heartbeats, but not always
// from the death of the cluster node that held it: its pull requests then
// find no responder, forever. So when no result came for stallCheck, the
// reader looks at the stream, and where a result is stored past the last
// one delivered, it opens a new consumer from there.
type resultsReader struct {
	m       *mapping
	subject string
	last    uint64 // stream sequence of the last result delivered
	it      atomic.Pointer[jetstream.MessagesContext]
}

// open starts a consumer after the last result delivered.
func (r *resultsReader) open(ctx context.Context) error {
	// Few resets: nats.go retries a failing reset without end inside Next,
	// out of this reader's sight; past them Next fails and the reader
	// opens a new consumer itself, with its own bounded attempts and logs.
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{r.subject}, MaxResetAttempts: 3}
	if r.last > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.last+1
	}
	cons, err := r.m.pool.q.js.OrderedConsumer(ctx, protocol.ResultsStream, cfg)
	if err != nil {
		return fmt.Errorf("results consumer: %w", err)
	}
	// Buffer at most resultsBuffer bytes of results in the client (and
	// room for the largest message), so memory does not depend on how big
	// a map's results are: 500 messages of a 10,000-input chunk's results
	// were 85 MB.
	it, err := cons.Messages(jetstream.PullMaxBytes(max(resultsBuffer, 2*int(r.m.pool.q.js.Conn().MaxPayload()))))
	if err != nil {
		return fmt.Errorf("results consumer: %w", err)
	}
	r.it.Store(&it)
	return nil
}

func (r *resultsReader) run(ctx context.Context, ch chan<- jetstream.Msg, quit <-chan struct{}) {
	log := r.m.pool.q.log
	for {
		it := *r.it.Load()
		msg, err := it.Next(jetstream.NextMaxWait(stallCheck))
		switch {
		case errors.Is(err, nats.ErrConnectionClosed):
			return
		case errors.Is(err, nats.ErrTimeout):
			if !r.stalled(ctx) {
				continue
			}
			log.Warn("results reader stalled with results stored; reading on with a new consumer",
				"map", r.m.id, "after_seq", r.last)
		case err != nil:
			select {
			case <-quit:
				return // stopped
			default:
			}
			log.Warn("results consumer failed; reading on with a new consumer", "map", r.m.id,
				"after_seq", r.last, "error", err)
		}
		if err != nil {
			it.Stop()
			if !r.reopen(ctx, quit) {
				return
			}
			continue
		}
		if meta, err := msg.Metadata(); err == nil {
			r.last = meta.Sequence.Stream
		}
		select {
		case ch <- msg:
		case <-quit:
			return
		}
	}
}

// reopen opens a new consumer after the last result delivered, trying
// again every second while the results stream does not answer; it reports
// false when the map ends first.
func (r *resultsReader) reopen(ctx context.Context, quit <-chan struct{}) bool {
	for {
		actx, cancel := context.WithTimeout(ctx, stallCheck)
		err := r.open(actx)
		cancel()
		select {
		case <-quit: // stop may have stopped the old iterator only
			(*r.it.Load()).Stop()
			return false
		default:
		}
		if err == nil {
			return true
		}
		r.m.pool.q.log.Warn("results consumer not reopened; retrying", "map", r.m.id, "error", err,
			"waiting_for", "the results stream's leader")
		if demo.Sleep(ctx, time.Second) != nil {
			return false
		}
	}
}

// stalled reports whether the stream holds a result of this map past the
// last one delivered.
func (r *resultsReader) stalled(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, stallCheck)
	defer cancel()
	last, err := r.m.pool.q.topo.Results.GetLastMsgForSubject(ctx, r.subject)
	return err == nil && last.Sequence > r.last
}
