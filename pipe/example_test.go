package pipe_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procq/procq/broker"
	"github.com/procq/procq/pipe"
)

// Two ends of a pipe; in real use each lives in its own process.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "procq-pipe-example-")
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

	sender, err := pipe.Open(ctx, js, "demo", pipe.A, pipe.Config{}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = sender.Send(ctx, []byte("Hello from sender!"))
	_ = sender.Send(ctx, []byte("Another message."))
	_ = sender.Close()

	// The receiver may open after the sender closed: it still gets all.
	receiver, _ := pipe.Open(ctx, js, "demo", pipe.B, pipe.Config{}, nil)
	defer receiver.Close()
	for {
		m, err := receiver.Recv(ctx)
		if errors.Is(err, io.EOF) {
			fmt.Println("closed by sender")
			return
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(string(m))
	}
	// Output:
	// Hello from sender!
	// Another message.
	// closed by sender
}
