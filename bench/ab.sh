#!/usr/bin/env bash
# Two builds side by side in one run: the executables of git revision REV
# (default main) against this tree's, "producer pool" with 2 consumer
# processes through the embedded broker, square without sleep over 1..N,
# at chunk size 1 and at the automatic chunk size, default configuration.
# The rounds alternate the two builds (A B A B ...), so that a machine's
# drift hits both alike; each row is the median of ROUNDS, and the ratio
# is this tree's over REV's.
# Usage: bench/ab.sh [REV] [N] [ROUNDS]   (defaults main, 100000, 5)
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-main}
n=${2:-100000}
rounds=${3:-5}
GO=${GO:-go}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "building $rev and this tree" >&2
mkdir -p "$work/src" "$work/a" "$work/b"
git archive "$rev" | tar -x -C "$work/src"
(cd "$work/src" && $GO build -o "$work/a/" ./cmd/broker ./cmd/producer ./cmd/consumer)
$GO build -o "$work/b/" ./cmd/broker ./cmd/producer ./cmd/consumer

export PROCQ_BROKER_URL=nats://127.0.0.1:0 PROCQ_LOG_DIR="$work/logs"
run() { # bin chunk -> inputs/s; each run on a store of its own
  local store
  store=$(mktemp -d -p "$work")
  PROCQ_BROKER_STORE_DIR="$store" timeout 600 "$1/producer" pool --kind square --sleep 0s --inputs "1..$n" \
    --processes 2 --chunk-size "$2" --quiet 2>/dev/null |
    sed -n 's/.*(\([0-9]*\) inputs\/s)$/\1/p'
  rm -rf "$store"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '| case (%d inputs, 2 consumer processes, median of %d) | %s items/s | this tree items/s | ratio |\n' "$n" "$rounds" "$rev"
printf '|---|---|---|---|\n'
for chunk in 1 0; do
  : >"$work/ra" && : >"$work/rb"
  for i in $(seq "$rounds"); do
    a=$(run "$work/a" "$chunk"); b=$(run "$work/b" "$chunk")
    echo "chunk=$chunk round $i: $rev $a, this tree $b" >&2
    echo "$a" >>"$work/ra"; echo "$b" >>"$work/rb"
  done
  ma=$(median <"$work/ra"); mb=$(median <"$work/rb")
  label="chunk 1"
  [ "$chunk" = 0 ] && label="automatic chunk"
  printf '| %s | %s | %s | %s |\n' "$label" "$ma" "$mb" "$(awk -v a="$ma" -v b="$mb" 'BEGIN {printf "%.3f", b/a}')"
done
