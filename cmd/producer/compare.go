package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/shirou/gopsutil/v3/cpu"
	"github.com/shirou/gopsutil/v3/process"
	"github.com/spf13/cobra"

	"github.com/procq/procq"
	"github.com/procq/procq/demo"
	"github.com/procq/procq/internal/cli"
)

func newCompareCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "compare",
		Short: "The Process demo: the same CPU-bound tasks one after another, then in parallel processes",
		Long: `compare prints the CPU's logical and physical core counts and this process's
PID (from gopsutil), runs compare.tasks sumsquares(compare.n) tasks one after
another in this process, then the same tasks at once in as many consumer
processes, and prints both times and the speedup. The parallel time is taken
once the consumer processes are up and idle, so it measures the work.`,
		Args: cobra.NoArgs,
		RunE: runCompare,
	}
	cmd.Flags().Int64("n", 0, "sumsquares input of each task (compare.n)")
	cmd.Flags().Int("tasks", 0, "tasks, and consumer processes (compare.tasks)")
	return cmd
}

var compareFlags = map[string]string{"n": "compare.n", "tasks": "compare.tasks"}

func runCompare(cmd *cobra.Command, _ []string) error {
	cfg, err := cli.Load(cmd, compareFlags)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	ctx := cmd.Context()
	logical, physical := cpuCounts()
	fmt.Fprintf(out, "Logical CPU cores: %d\nPhysical CPU cores: %d\nMain process PID: %d\n", logical, physical, os.Getpid())

	n, tasks := cfg.Compare.N, cfg.Compare.Tasks
	syncTime, err := runSync(ctx, out, n, tasks)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Synchronous execution time: %.3f s\n", syncTime.Seconds())

	s, err := openSession(ctx, cfg, out)
	if err != nil {
		return err
	}
	defer s.close()
	pool, err := s.pool(ctx, tasks, procq.ChunkSize(1), procq.Label("Parallel"))
	if err != nil {
		return err
	}
	args := make([]demo.SumSquaresArgs, tasks)
	for i := range args {
		args[i] = demo.SumSquaresArgs{N: n}
	}
	start := time.Now()
	_, err = procq.Map[demo.SumSquaresArgs, string](ctx, pool, demo.KindSumSquares, args)
	parTime := time.Since(start)
	if err == nil {
		fmt.Fprintf(out, "Multiprocessed execution time (CPU-bound): %.3f s\n", parTime.Seconds())
		printProcessFacts(out, pool.PIDs())
	}
	if err := s.finish(ctx, pool, err); err != nil {
		return err
	}
	fmt.Fprintf(out, "Speedup: %.2fx with %d processes on %d logical cores\n", syncTime.Seconds()/parTime.Seconds(), tasks, logical)
	return nil
}

// runSync runs the tasks one after another in this process, as the seed's
// synchronous part does.
func runSync(ctx context.Context, out io.Writer, n int64, tasks int) (time.Duration, error) {
	start := time.Now()
	for i := range tasks {
		label := fmt.Sprintf("Sync-%d", i+1)
		fmt.Fprintln(out, demo.StartLine(label, os.Getpid()))
		sum, err := demo.SumSquares(ctx, n)
		if err != nil {
			return 0, err
		}
		fmt.Fprintln(out, demo.FinishLine(label, []byte(`"`+sum.String()+`"`), nil))
	}
	return time.Since(start), nil
}

// printProcessFacts prints each consumer process's CPU time and memory, read
// with gopsutil while the processes are still alive.
func printProcessFacts(out io.Writer, pids map[string]int) {
	names := make([]string, 0, len(pids))
	for name := range pids {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p, err := process.NewProcess(int32(pids[name]))
		if err != nil {
			continue
		}
		times, errT := p.Times()
		mem, errM := p.MemoryInfo()
		if errT != nil || errM != nil {
			continue
		}
		fmt.Fprintf(out, "Consumer %s (PID: %d): CPU %.2f s, RSS %.1f MiB\n",
			name, pids[name], times.User+times.System, float64(mem.RSS)/(1<<20))
	}
}

// cpuCounts returns the logical and physical core counts from gopsutil.
func cpuCounts() (logical, physical int) {
	logical, _ = cpu.Counts(true)
	physical, _ = cpu.Counts(false)
	return max(logical, 1), max(physical, 1)
}

func logicalCPUs() int {
	l, _ := cpuCounts()
	return l
}
