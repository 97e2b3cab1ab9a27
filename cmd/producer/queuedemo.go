package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/procq/procq"
	"github.com/procq/procq/demo"
)

// queueDemo is the Queue demo: it puts Messages messages "Message 0", ...
// with a random pause in [PauseMin, PauseMax] between them, then announces
// one sentinel per consumer, which the pool puts when it closes.
type queueDemo struct {
	Messages           int
	PauseMin, PauseMax time.Duration
	Consumers          int
	Priority           procq.Level // of every message
	Out                io.Writer
}

// put puts the demo's messages on p.
func (d queueDemo) put(ctx context.Context, p *procq.Pool) error {
	out := d.Out
	if out == nil {
		out = io.Discard
	}
	for i := range d.Messages {
		text := fmt.Sprintf("Message %d", i)
		fmt.Fprintf(out, "Producer: Putting '%s' on queue\n", text)
		if _, err := p.Submit(ctx, demo.KindMessage, demo.MessageArgs{Text: text}, procq.Priority(d.Priority)); err != nil {
			return err
		}
		if err := pause(ctx, d.PauseMin, d.PauseMax); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "Producer: Putting %d sentinels on queue\n", d.Consumers)
	return nil
}

func pause(ctx context.Context, lo, hi time.Duration) error {
	d := lo
	if hi > lo {
		d += rand.N(hi - lo)
	}
	return demo.Sleep(ctx, d)
}
