package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/broker"
	"github.com/procq/procq/consumer"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/producer"
	"github.com/procq/procq/protocol"
	"github.com/procq/procq/task"
)

// A task kind of your own: register a handler in a registry and build a
// consumer with it; a producer maps the kind like any built-in one. (A
// program does the consumer side with app.Main(reg) to get the whole
// consumer command line.)
func Example_customKind() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "procq-example-")
	defer os.RemoveAll(dir)
	srv, err := broker.Start(broker.Config{URL: "nats://127.0.0.1:0", StoreDir: dir}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown()
	nc, _ := nats.Connect(srv.ClientURL(), nats.Token(srv.Token()))
	defer nc.Close()
	js, _ := jetstream.New(nc)
	topo, _ := protocol.EnsureQueue(ctx, js, protocol.QueueConfig{Name: "words"})

	// Consumer side: the built-in kinds plus "upper".
	reg := demo.Builtins()
	err = reg.Register("upper", task.HandlerFunc(func(ctx context.Context, args json.RawMessage) (json.RawMessage, error) {
		var s string
		if err := json.Unmarshal(args, &s); err != nil {
			return nil, fmt.Errorf("%w: want a string", task.ErrBadArgs)
		}
		return json.Marshal(strings.ToUpper(s))
	}))
	if err != nil {
		fmt.Println(err)
		return
	}
	w, _ := consumer.New(consumer.Config{Name: "W-1"}, js, topo, reg, nil)
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = w.Run(wctx) })
	defer wg.Wait()
	defer stop()

	// Producer side: map "upper" over inputs; results come in input order,
	// a bad input gets its own error.
	pool := producer.NewPool(producer.NewTaskQueue("words", js, topo, nil), producer.PoolConfig{})
	results, err := pool.Map(ctx, "upper", []any{"queue", "pool", 42, "pipe"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range results {
		if r.Err != nil {
			fmt.Println(r.Index, "error:", r.Err)
			continue
		}
		fmt.Println(r.Index, string(r.Value))
	}
	// Output:
	// 0 "QUEUE"
	// 1 "POOL"
	// 2 error: upper #2: bad task arguments: want a string
	// 3 "PIPE"
}
