package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/procq/procq/task"
)

// KindMessage is the kind of a Queue demo message; its arguments are
// MessageArgs.
const KindMessage = "message"

// MessageArgs are the arguments of a Queue demo message.
type MessageArgs struct {
	Text string `json:"text"`
}

// MessageHandler handles the Queue demo's "message" kind: it prints
// "Consumer <name>: Got '<text>' from queue" to out, then works for a random
// time in [workMin, workMax].
func MessageHandler(out io.Writer, name string, workMin, workMax time.Duration) task.Handler {
	return task.HandlerFunc(func(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
		var args MessageArgs
		if err := json.Unmarshal(raw, &args); err != nil {
			return nil, fmt.Errorf("%w: %v", task.ErrBadArgs, err)
		}
		fmt.Fprintf(out, "Consumer %s: Got '%s' from queue\n", name, args.Text)
		work := workMin
		if workMax > workMin {
			work += rand.N(workMax - workMin)
		}
		t := time.NewTimer(work)
		defer t.Stop()
		select {
		case <-t.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
}
