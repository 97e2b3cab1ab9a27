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

// Both ends of a pipe; in real use each lives in its own process, with its
// own connection. End B opens after A has sent, and still gets everything;
// it answers on the same pipe; A's Close gives B io.EOF after the last
// message.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "procq-pipe-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	srv, err := broker.Start(broker.Config{URL: "nats://127.0.0.1:0", StoreDir: dir}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL(), nats.Token(srv.Token()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Println(err)
		return
	}

	a, err := pipe.Open(ctx, js, "demo", pipe.A, pipe.Config{}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()
	_ = a.Send(ctx, []byte("Hello from sender!"))
	_ = a.Send(ctx, []byte("Another message."))

	b, err := pipe.Open(ctx, js, "demo", pipe.B, pipe.Config{}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	for range 2 {
		m, _ := b.Recv(ctx)
		fmt.Printf("B received %q\n", m)
		_ = b.Send(ctx, append([]byte("got: "), m...))
	}
	for range 2 {
		m, _ := a.Recv(ctx)
		fmt.Printf("A received %q\n", m)
	}
	_ = a.Close()
	if _, err := b.Recv(ctx); errors.Is(err, io.EOF) {
		fmt.Println("B: closed by A")
	}
	// Output:
	// B received "Hello from sender!"
	// B received "Another message."
	// A received "got: Hello from sender!"
	// A received "got: Another message."
	// B: closed by A
}
