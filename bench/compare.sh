#!/usr/bin/env bash
# The Process demo's speedup: "producer compare" ROUNDS times (default 3),
# each timing the same sumsquares tasks one after another in-process, then
# at once in as many consumer processes; then, when python3 is present, the
# seed's Python version (bench/compare_python.py) as many times, side by
# side in one run. Usage: bench/compare.sh [ROUNDS] [N] [PYTHON_N]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
n=${2:-3000000000}
pyn=${3:-40000000} # CPython runs the loop about 100 times slower
make -s build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PROCQ_BROKER_URL=nats://127.0.0.1:0 PROCQ_BROKER_STORE_DIR="$work/data" PROCQ_LOG_DIR="$work/logs"
printf 'round\tsync s\tparallel s\tspeedup\n'
for r in $(seq "$rounds"); do
  out=$(bin/producer compare --n "$n" 2>/dev/null)
  s=$(sed -n 's/^Synchronous execution time: \(.*\) s$/\1/p' <<<"$out")
  p=$(sed -n 's/^Multiprocessed execution time (CPU-bound): \(.*\) s$/\1/p' <<<"$out")
  x=$(sed -n 's/^Speedup: \([0-9.]*\)x.*/\1/p' <<<"$out")
  printf '%s\t%s\t%s\t%s\n' "$r" "$s" "$p" "$x"
done
if command -v python3 >/dev/null; then
  for r in $(seq "$rounds"); do
    printf 'python %s\t%s\n' "$r" "$(python3 bench/compare_python.py "$pyn")"
  done
fi
