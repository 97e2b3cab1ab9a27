#!/usr/bin/env bash
# Pool throughput, side by side in one run: procq's "producer pool" with 2
# consumer processes through the real (embedded) broker, square without
# sleep over 1..N, at chunk size 1 and at the automatic chunk size, with the
# default prefetch and with prefetch 256; then Python's multiprocessing.Pool
# on the same inputs when python3 is present. Usage: bench/pool.sh [N] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
rounds=${2:-3}
make -s build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PROCQ_BROKER_URL=nats://127.0.0.1:0 PROCQ_BROKER_STORE_DIR="$work/data" PROCQ_LOG_DIR="$work/logs"

procq() { # chunk prefetch [window] -> inputs/s
  PROCQ_CONSUMERS_PREFETCH=$2 PROCQ_POOL_WINDOW=${3:-1024} bin/producer pool --kind square --sleep 0s --inputs "1..$n" \
    --processes 2 --chunk-size "$1" --quiet 2>/dev/null |
    sed -n 's/.*(\([0-9]*\) inputs\/s)$/\1/p'
}

printf 'case\titems/s (%d inputs, 2 processes, %d rounds, median)\n' "$n" "$rounds"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for c in "1 0" "1 256 256" "1 256" "0 0" "0 256"; do
  set -- $c
  label="procq chunk=$1 prefetch=$2 window=${3:-1024}"
  [ "$1" = 0 ] && label="procq chunk=auto prefetch=$2 window=${3:-1024}"
  printf '%s\t%s\n' "$label" "$(for _ in $(seq "$rounds"); do procq "$@"; done | median)"
done
if command -v python3 >/dev/null; then
  for _ in $(seq "$rounds"); do python3 bench/pool_python.py "$n" 2; done |
    awk -F'\t' '{v[$1]=v[$1] " " $2} END {for (k in v) print k "\t" v[k]}' |
    while IFS=$'\t' read -r name vals; do
      printf '%s\t%s\n' "$name" "$(echo $vals | tr ' ' '\n' | median)"
    done
fi
