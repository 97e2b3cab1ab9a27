#!/usr/bin/env bash
# Two builds side by side in one run: the executables of git revision REV
# (default main) against this tree's, "producer pool" with 2 consumer
# processes through the embedded broker, square without sleep over 1..N,
# at chunk size 1 and at the automatic chunk size, default configuration.
# Each run gives its throughput (inputs/s) and the CPU time the producer,
# its broker and its consumers spent (user + system, from /usr/bin/time):
# on a machine shared with other work the CPU time per input is the
# steadier figure. The rounds alternate the two builds (A B, B A, A B,
# ...), so that a machine's drift, and whatever one run leaves the next,
# hit both alike; each cell is the median of ROUNDS, and the ratios are
# this tree's over REV's, the median of the rounds' own ratios.
# Usage: bench/ab.sh [REV] [N] [ROUNDS] [CHUNKS]   (defaults main, 100000, 5, "1 0")
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-main}
n=${2:-100000}
rounds=${3:-5}
chunks=${4:-1 0} # chunk sizes, 0: automatic
GO=${GO:-go}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "building $rev and this tree" >&2
mkdir -p "$work/src" "$work/a" "$work/b"
git archive "$rev" | tar -x -C "$work/src"
(cd "$work/src" && $GO build -o "$work/a/" ./cmd/broker ./cmd/producer ./cmd/consumer)
$GO build -o "$work/b/" ./cmd/broker ./cmd/producer ./cmd/consumer

export PROCQ_BROKER_URL=nats://127.0.0.1:0 PROCQ_LOG_DIR="$work/logs"
run() { # bin chunk -> "inputs/s cpu_µs_per_input"; each run on a store of its own
  local store out rate cpu
  store=$(mktemp -d -p "$work")
  out=$(PROCQ_BROKER_STORE_DIR="$store" /usr/bin/time -f 'cpu %U %S' timeout 600 "$1/producer" pool --kind square --sleep 0s \
    --inputs "1..$n" --processes 2 --chunk-size "$2" --quiet 2>&1 >"$store/out"; cat "$store/out")
  rate=$(sed -n 's/.*(\([0-9]*\) inputs\/s)$/\1/p' <<<"$out")
  cpu=$(awk -v n="$n" '$1 == "cpu" {printf "%.2f", ($2 + $3) * 1e6 / n}' <<<"$out")
  rm -rf "$store"
  echo "${rate:-0} ${cpu:-0}"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '| case (%d inputs, 2 consumer processes, median of %d) | %s inputs/s | this tree inputs/s | ratio | %s CPU µs/input | this tree CPU µs/input | ratio |\n' \
  "$n" "$rounds" "$rev" "$rev"
printf '|---|---|---|---|---|---|---|\n'

for chunk in $chunks; do
  : >"$work/ra" && : >"$work/rb"
  for i in $(seq "$rounds"); do
    if [ $((i % 2)) = 1 ]; then
      a=$(run "$work/a" "$chunk"); b=$(run "$work/b" "$chunk")
    else # every other round the other first: no build always runs second
      b=$(run "$work/b" "$chunk"); a=$(run "$work/a" "$chunk")
    fi
    echo "chunk=$chunk round $i: $rev $a, this tree $b (inputs/s, CPU µs/input)" >&2
    echo "$a" >>"$work/ra"; echo "$b" >>"$work/rb"
  done
  ra=$(cut -d' ' -f1 "$work/ra" | median); rb=$(cut -d' ' -f1 "$work/rb" | median)
  ca=$(cut -d' ' -f2 "$work/ra" | median); cb=$(cut -d' ' -f2 "$work/rb" | median)
  # The ratio is the median of each round's own ratio: a drift of the
  # machine over the run moves both builds of a round alike.
  rr=$(paste -d' ' "$work/ra" "$work/rb" | awk '$1 > 0 {printf "%.3f\n", $3 / $1}' | median)
  cr=$(paste -d' ' "$work/ra" "$work/rb" | awk '$2 > 0 {printf "%.3f\n", $4 / $2}' | median)
  label="chunk 1"
  [ "$chunk" = 0 ] && label="automatic chunk"
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$ra" "$rb" "$rr" "$ca" "$cb" "$cr"
done
