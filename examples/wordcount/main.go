// Command wordcount is a procq consumer with a task kind of its own, built
// on the consumer library: "words" counts the words of a text that are not
// stop words. The stop words are loaded once per process by an
// initializer, from the file STOPWORDS names (one word per line), or a
// short English list when STOPWORDS is unset; a file that cannot be read
// makes the process exit 1 before it takes a task.
//
// Build it and point the producer at it:
//
//	go build -o bin/wordcount ./examples/wordcount
//	PROCQ_CONSUMERS_PATH=bin/wordcount bin/producer pool --kind words --inputs '"the cat sat on the mat","a dog"'
package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/procq/procq/cmd/consumer/app"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/task"
)

func main() {
	var stop map[string]bool // set by the initializer, read by the tasks
	reg := demo.Builtins()
	task.MustRegister(reg, "words", func(ctx context.Context, text string) (int, error) {
		n := 0
		for _, w := range strings.Fields(strings.ToLower(text)) {
			if !stop[w] {
				n++
			}
		}
		return n, nil
	})
	app.Main(reg, app.Initializer(func(context.Context) error {
		words := "a an and in of on the to"
		if path := os.Getenv("STOPWORDS"); path != "" {
			b, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("load stop words: %w", err)
			}
			words = string(b)
		}
		stop = map[string]bool{}
		for _, w := range strings.Fields(strings.ToLower(words)) {
			stop[w] = true
		}
		return nil
	}))
}
