package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/procq/procq"
	"github.com/procq/procq/config"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/internal/cli"
	"github.com/procq/procq/internal/flushw"
	"github.com/procq/procq/producer"
	"github.com/procq/procq/protocol"
)

func newPoolCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pool",
		Short: "Map a task kind over inputs across consumer processes; results in input order",
		Long: `pool is Python's Pool.map across processes: it starts pool.processes consumer
processes (0: one per logical CPU), maps --kind over --inputs, prints each result
in input order as it arrives and the total time, then sends the sentinels and
joins the children. A failed input prints its error; the map still completes.
A consumer killed mid-map does not hang it: its task is redelivered and the
process is replaced.

With --in or --at the map starts later: the consumers start and the map takes
its lease now (so it fails as usual when no consumer is left), and its first
task is submitted at that time. With --deadline, a task a consumer takes after
that time is not run: its inputs fail with "deadline passed" and it is
dead-lettered. With --priority high (or low) the map's tasks go on that
level of the queue: its consumers take every waiting high-priority task
before any other, and low-priority ones only when nothing else waits.`,
		Args: cobra.NoArgs,
		RunE: runPool,
	}
	f := cmd.Flags()
	f.String("kind", "", "task kind (pool.kind): sumsquares, square, or your own")
	f.String("inputs", "", "inputs (pool.inputs): a range a..b, a JSON array, JSON lines, or comma-separated JSON values (a bare word is a string)")
	f.Int("processes", 0, "consumer processes to spawn (pool.processes; 0: logical CPUs)")
	f.Int("chunk-size", 0, "inputs per message (pool.chunk_size; 0: automatic)")
	f.Duration("sleep", 0, "sleep of each square task (pool.sleep)")
	f.Bool("spawn", false, "start the consumer processes (consumers.spawn)")
	f.Int("concurrency", 0, "tasks each consumer runs at once (consumers.concurrency)")
	f.Duration("task-timeout", 0, "time limit of each task in the spawned consumers (consumers.task_timeout; 0: none)")
	f.Bool("json", false, "print one JSON array, one element per input in input order")
	f.Bool("quiet", false, "print only the summary line")
	cli.AddWhenFlags(cmd, "start the map")
	f.String("deadline", "", "RFC 3339 time after which a task is not worth running: a consumer that takes it later runs nothing, the input fails with \"deadline passed\" and the task is dead-lettered")
	cli.AddPriorityFlag(cmd)
	return cmd
}

var poolFlags = map[string]string{
	"kind":         "pool.kind",
	"inputs":       "pool.inputs",
	"processes":    "pool.processes",
	"chunk-size":   "pool.chunk_size",
	"sleep":        "pool.sleep",
	"spawn":        "consumers.spawn",
	"concurrency":  "consumers.concurrency",
	"task-timeout": "consumers.task_timeout",
}

func runPool(cmd *cobra.Command, _ []string) error {
	cfg, err := cli.Load(cmd, poolFlags)
	if err != nil {
		return err
	}
	inputs, err := config.ParseInputList(cfg.Pool.Inputs) // validated by Load; a range stays lazy
	if err != nil {
		return err
	}
	asJSON, _ := cmd.Flags().GetBool("json")
	quiet, _ := cmd.Flags().GetBool("quiet")
	startAt, err := cli.When(cmd, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	deadline, err := cli.Deadline(cmd, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	priority, err := cli.Priority(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	// Result lines are buffered: a million of them cost a few hundred
	// writes, not a million (none waits longer than flushw.DefaultDelay).
	out := flushw.New(cmd.OutOrStdout(), flushw.DefaultDelay)
	defer out.Flush()
	childOut := io.Writer(out)
	if asJSON {
		childOut = cmd.ErrOrStderr() // keep stdout one JSON document
	}
	s, err := openSession(ctx, cfg, childOut)
	if err != nil {
		return err
	}
	defer s.close()
	workers := s.poolSize()
	chunk := cfg.Pool.ChunkSize
	if chunk == 0 {
		chunk = producer.AutoChunk(inputs.Len(), workers)
	}
	pool, err := s.pool(ctx, workers, procq.ChunkSize(chunk), procq.StartAt(startAt), procq.MapDeadline(deadline),
		procq.MapPriority(priority))
	if err != nil {
		return err
	}
	if !asJSON {
		fmt.Fprintf(out, "Pool: mapping %s over %d inputs with %d consumer processes, chunk size %d%s\n",
			cfg.Pool.Kind, inputs.Len(), workers, chunk, priorityNote(priority))
	}
	if wait := time.Until(startAt); wait > 0 && !asJSON {
		fmt.Fprintf(out, "Pool: the map starts at %s (in %v)\n", startAt.UTC().Format(time.RFC3339), wait.Round(time.Second))
	}
	p := &poolPrinter{out: out, kind: cfg.Pool.Kind, inputs: inputs, json: asJSON, quiet: quiet}
	progress := newProgress(inputs.Len(), s.log)
	start := time.Now()
	if startAt.After(start) {
		start = startAt // the summary's time is the map's own
	}
	var mapErr error
	for r, err := range imapInputs(ctx, pool, cfg.Pool.Kind, inputs, cfg.Pool.Sleep) {
		if err != nil {
			mapErr = err
			break
		}
		progress.add()
		p.print(r)
	}
	elapsed := time.Since(start)
	progress.finish()
	p.end()
	if mapErr == nil {
		s.log.Info("map done", "task", cfg.Pool.Kind, "inputs", inputs.Len(), "failed", p.failed, "seconds", elapsed.Seconds())
		if !asJSON {
			fmt.Fprintf(out, "Pool: %d results in input order, %d failed, in %.3f s (%.0f inputs/s)\n",
				inputs.Len(), p.failed, elapsed.Seconds(), float64(inputs.Len())/elapsed.Seconds())
		}
	}
	if err := s.finish(ctx, pool, mapErr); err != nil {
		return err
	}
	if p.failed > 0 {
		// Every result was printed; the exit code tells scripts some failed.
		return fmt.Errorf("%d of %d inputs failed", p.failed, inputs.Len())
	}
	return nil
}

// poolSize is the number of consumer processes a pool map uses: the
// processes to spawn, or consumers.count when the user starts them.
func (s *session) poolSize() int {
	if !s.cfg.Consumers.Spawn {
		return s.cfg.Consumers.Count
	}
	if n := s.cfg.Pool.Processes; n > 0 {
		return n
	}
	return logicalCPUs()
}

// imapInputs maps kind over the inputs, in order. Integer inputs of the
// built-in kinds go as their typed arguments, which a chunk encodes in one
// call without boxing each; any other input as taskArgs makes it.
func imapInputs(ctx context.Context, pool *procq.Pool, kind string, inputs config.Inputs, sleep time.Duration) iter.Seq2[procq.Result[json.RawMessage], error] {
	ints, ok := inputs.Ints()
	switch {
	case ok && kind == demo.KindSquare:
		sleepArg := ""
		if sleep > 0 {
			sleepArg = sleep.String()
		}
		args := func(yield func(demo.SquareArgs) bool) {
			for n := range ints {
				if !yield(demo.SquareArgs{X: n, Sleep: sleepArg}) {
					return
				}
			}
		}
		return procq.Imap[demo.SquareArgs, json.RawMessage](ctx, pool, kind, args)
	case ok && kind == demo.KindSumSquares:
		args := func(yield func(demo.SumSquaresArgs) bool) {
			for n := range ints {
				if !yield(demo.SumSquaresArgs{N: n}) {
					return
				}
			}
		}
		return procq.Imap[demo.SumSquaresArgs, json.RawMessage](ctx, pool, kind, args)
	}
	return procq.Imap[any, json.RawMessage](ctx, pool, kind, taskArgs(kind, inputs, sleep))
}

// taskArgs yields the pool's inputs as the kind's arguments, one by one: the built-in
// kinds take {"n": input} and {"x": input, "sleep": ...}; any other kind
// gets each input as its arguments.
func taskArgs(kind string, inputs config.Inputs, sleep time.Duration) iter.Seq[any] {
	sleepArg := ""
	if sleep > 0 {
		sleepArg = sleep.String()
	}
	return func(yield func(any) bool) {
		for in := range inputs.All() {
			n, isInt := in.(int64)
			var arg any
			switch {
			case kind == demo.KindSumSquares && isInt:
				arg = demo.SumSquaresArgs{N: n}
			case kind == demo.KindSumSquares:
				arg = map[string]any{"n": in} // the task reports the bad input
			case kind == demo.KindSquare && isInt:
				arg = demo.SquareArgs{X: n, Sleep: sleepArg}
			case kind == demo.KindSquare:
				arg = map[string]any{"x": in, "sleep": sleepArg}
			default:
				arg = in
			}
			if !yield(arg) {
				return
			}
		}
	}
}

// poolPrinter prints results as lines, or as one JSON array written
// element by element.
type poolPrinter struct {
	out    io.Writer
	kind   string
	inputs config.Inputs
	json   bool
	quiet  bool
	failed int
	n      int
	line   []byte // the text line's buffer, reused
}

func (p *poolPrinter) print(r procq.Result[json.RawMessage]) {
	if r.Err != nil {
		p.failed++
	}
	switch {
	case p.json:
		sep := ",\n "
		if p.n == 0 {
			sep = "[\n "
		}
		// {"index":N,"input":...,"result":...,"error":null or "..."}, as
		// json.Marshal would write it, by appends.
		b := append(p.line[:0], sep...)
		b = append(b, `{"index":`...)
		b = strconv.AppendInt(b, int64(r.Index), 10)
		b = append(b, `,"input":`...)
		if n, ok := p.inputs.IntAt(r.Index); ok {
			b = strconv.AppendInt(b, n, 10)
		} else {
			b = appendJSON(b, p.inputs.At(r.Index))
		}
		b = append(b, `,"result":`...)
		if r.Value == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, r.Value...)
		}
		b = append(b, `,"error":`...)
		if r.Err != nil {
			b = appendJSON(b, r.Err.(*producer.TaskError).Message)
		} else {
			b = append(b, "null"...)
		}
		b = append(b, '}')
		_, _ = p.out.Write(b)
		p.line = b
	case p.quiet:
	default:
		// One append per part and one write per line, into the buffered
		// output: a line costs what its bytes do, not a formatter's work.
		b := append(p.line[:0], p.kind...)
		b = append(b, '(')
		if n, ok := p.inputs.IntAt(r.Index); ok {
			b = strconv.AppendInt(b, n, 10)
		} else {
			b = appendInput(b, p.inputs.At(r.Index))
		}
		if r.Err != nil {
			b = append(b, ") failed: "...)
			b = append(b, r.Err.(*producer.TaskError).Message...)
		} else {
			b = append(b, ") = "...)
			b = appendDisplay(b, r.Value)
		}
		b = append(b, '\n')
		_, _ = p.out.Write(b)
		p.line = b
	}
	p.n++
}

// appendJSON appends v as JSON.
func appendJSON(b []byte, v any) []byte {
	j, err := json.Marshal(v)
	if err != nil {
		return append(b, "null"...)
	}
	return append(b, j...)
}

// appendInput appends an input as %v shows it.
func appendInput(b []byte, in any) []byte {
	switch v := in.(type) {
	case string:
		return append(b, v...)
	default:
		return fmt.Appendf(b, "%v", v)
	}
}

func (p *poolPrinter) end() {
	if !p.json {
		return
	}
	if p.n == 0 {
		fmt.Fprintln(p.out, "[]")
		return
	}
	fmt.Fprintln(p.out, "\n]")
}

// appendDisplay appends a JSON result as it is shown: a string (such as a
// big integer) unquoted, anything else as it is.
func appendDisplay(b []byte, v json.RawMessage) []byte {
	if len(v) > 0 && v[0] == '"' {
		var s string
		if json.Unmarshal(v, &s) == nil {
			return append(b, s...)
		}
	}
	return append(b, v...)
}

// priorityNote is what the first line says of a priority other than the
// default.
func priorityNote(p protocol.Priority) string {
	if p.Norm() == protocol.PriorityDefault {
		return ""
	}
	return ", priority " + string(p)
}
