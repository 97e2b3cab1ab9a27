#!/usr/bin/env bash
# Every comparison of the performance goals in one run, printed as ONE
# markdown table at the end (progress and every round's figure go to stderr
# on the way), each row against its anchor measured in the same run:
#   1. procq's pool (default config, 2 consumer processes, embedded broker)
#      against Python's Pool.map: the automatic chunk printed and --quiet at
#      100,000 and 1,000,000 inputs against Python's default chunking, chunk 1
#      printed at 50,000 and 1,000,000 against chunksize=1; rounds
#      interleaved, median per row; printed against --quiet at 1,000,000;
#   2. procq chunk 1 against raw JetStream (BenchmarkRawJetStream in ./link);
#   3. one-task latency (BenchmarkOneTask in ./producer: Pool.Apply against
#      NATS request/reply on the same broker);
#   4. the idle RSS of a consumer started by hand against bin/broker;
#   5. the producer's peak RSS over a 1,000,000- and a 10,000,000-input map
#      at automatic chunk with --json, against a standalone bin/broker;
#   6. the 3-node cluster (bench/cluster.sh): R3 against R1 at the automatic
#      chunk, and the failover pause after kill -9 of a node against the
#      time NATS takes to elect the new stream leader (BENCH_CLUSTER=0 skips).
# Usage: bench/all.sh [ROUNDS_SMALL] [ROUNDS_1M]   (defaults 3 and 1)
# Every wait is bounded; every process it starts is stopped on exit, and its
# temp dir removed. Exits 1 when a measurement failed (its cell says so).
set -uo pipefail
cd "$(dirname "$0")/.."
r100k=${1:-3}
r1m=${2:-1}
GO=${GO:-go}
N1=${BENCH_N1:-100000} # overridable for a quick trial of the script
N2=${BENCH_N2:-1000000}
NC1=${BENCH_NC1:-50000} # chunk 1's small size
NMEM=${BENCH_NMEM:-10000000} # the memory row's large size (against N2)

t0=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
cpu_busy() { awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
read -r busy0 total0 < <(cpu_busy)

work=$(mktemp -d)
pids=() # processes this script started and has not reaped yet
failed=0

stop_pid() { # pid: TERM, up to 10 s to exit, then KILL
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}
forget() { # pid: drop from pids
  local keep=() p
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}
cleanup() {
  local p
  for p in "${pids[@]}"; do stop_pid "$p"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "bench/all.sh: interrupted" >&2; exit 130' INT TERM

log() { printf '[%4ds] %s\n' "$(($(date +%s) - t0))" "$*" >&2; }

# bounded SECS OUT cmd...: run cmd with stdout and stderr into OUT, killed
# (with everything it started: timeout signals its process group) after SECS.
# Started in the background and waited for, so that an interrupt reaches the
# trap at once. Sets rc.
bounded() {
  local secs=$1 out=$2
  shift 2
  timeout -k 10 "$secs" "$@" >"$out" 2>&1 &
  local p=$!
  pids+=("$p")
  wait "$p"
  rc=$?
  forget "$p"
  [ "$rc" = 124 ] && log "timed out after ${secs}s: $*"
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }
num() { # 1234567 -> 1,234,567; empty -> failed
  awk -v x="$1" 'BEGIN { if (x == "") { print "**failed**"; exit }
    s = sprintf("%.0f", x); r = ""
    while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) }
    print s r }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }
meets() { # value op bound -> yes / no / n/a
  awk -v v="$1" -v op="$2" -v b="$3" 'BEGIN { if (v == "" || v == "n/a") { print "n/a"; exit }
    ok = (op == ">=") ? v + 0 >= b + 0 : v + 0 < b + 0; print ok ? "yes" : "**no**" }'
}

log "building"
if ! make -s build >"$work/build.out" 2>&1; then
  cat "$work/build.out" >&2
  exit 1
fi
command -v python3 >/dev/null || log "python3 not found: the Python rows will say failed"

# ---- 1. procq's pool against Python's Pool.map ----------------------------
# procq_rate N CHUNK MODE: one "producer pool" run on a fresh embedded broker
# and store, default config otherwise, its results printed to a file
# (MODE printed) or not (MODE quiet); sets rate (inputs/s, empty on
# failure).
procq_rate() {
  local d="$work/pool" flag=()
  [ "$3" = quiet ] && flag=(--quiet)
  rm -rf "$d" && mkdir -p "$d"
  PROCQ_BROKER_URL=nats://127.0.0.1:0 PROCQ_BROKER_STORE_DIR="$d/data" PROCQ_LOG_DIR="$d/logs" \
    bounded 600 "$d/out" bin/producer pool --kind square --sleep 0s --inputs "1..$1" \
    --processes 2 --chunk-size "$2" "${flag[@]}"
  rate=$(sed -n 's/.*(\([0-9]*\) inputs\/s)$/\1/p' "$d/out" | tail -1)
  [ -n "$rate" ] || { log "procq pool $1 chunk $2 $3 failed (exit $rc): $(tail -3 "$d/out")"; failed=1; }
  rm -rf "$d"
}
# python_rate N CASE: one bench/pool_python.py run of CASE (one:
# chunksize=1, default: default chunking); sets rate.
python_rate() {
  bounded 900 "$work/py.out" python3 bench/pool_python.py "$1" 2 "$2"
  rate=$(awk -F'\t' '{print $2}' "$work/py.out" | tail -1)
  [ -n "$rate" ] || { log "python $1 $2 failed (exit $rc): $(tail -3 "$work/py.out")"; failed=1; }
}
# pool_part NC1 N ROUNDS TAG: sets, as medians over interleaved rounds,
# c1_TAG (chunk 1 printed, NC1 inputs), ap_TAG and aq_TAG (automatic chunk
# printed and quiet, N inputs), py1_TAG and pyd_TAG (Python chunksize=1 at
# NC1, default chunking at N), and runs_<row>_TAG with every round.
pool_part() {
  local nc1=$1 n=$2 rounds=$3 tag=$4 r row
  declare -A runs=()
  for r in $(seq "$rounds"); do
    procq_rate "$nc1" 1 printed && runs[c1]+=" $rate"
    python_rate "$nc1" one && runs[py1]+=" $rate"
    procq_rate "$n" 0 printed && runs[ap]+=" $rate"
    procq_rate "$n" 0 quiet && runs[aq]+=" $rate"
    python_rate "$n" default && runs[pyd]+=" $rate"
    log "pool round $r: chunk 1 printed ($nc1) ${runs[c1]##* } vs Python ${runs[py1]##* };" \
      "automatic ($n) printed ${runs[ap]##* }, quiet ${runs[aq]##* } vs Python ${runs[pyd]##* } inputs/s"
  done
  for row in c1 py1 ap aq pyd; do
    printf -v "${row}_$tag" '%s' "$(printf '%s\n' ${runs[$row]} | grep . | median)"
    printf -v "runs_${row}_$tag" '%s' "${runs[$row]# }"
  done
}
pool_part "$NC1" "$N1" "$r100k" 1
pool_part "$N2" "$N2" "$r1m" 2

# ---- 2. raw JetStream on the same machine ----------------------------------
log "raw JetStream: go test -bench RawJetStream -benchtime 2x -count 3 ./link"
bounded 600 "$work/raw.out" "$GO" test -run '^$' -bench RawJetStream -benchtime 2x -count 3 -timeout 9m ./link
raw_runs=$(awk '/^BenchmarkRawJetStream/ {for (i = 2; i <= NF; i++) if ($i == "msgs/s") print $(i-1)}' "$work/raw.out")
raw=$(printf '%s\n' "$raw_runs" | grep . | median)
[ -n "$raw" ] || { log "raw JetStream failed (exit $rc): $(tail -5 "$work/raw.out")"; failed=1; }
log "raw JetStream msgs/s: $(echo $raw_runs)"

# ---- 3. one-task latency ----------------------------------------------------
log "one task: go test -bench OneTask -benchtime 500x ./producer"
bounded 600 "$work/one.out" "$GO" test -run '^$' -bench OneTask -benchtime 500x -timeout 9m ./producer
metric() { # benchmark-name-part unit
  awk -v name="$1" -v unit="$2" 'index($1, name) {for (i = 2; i <= NF; i++) if ($i == unit) print $(i-1)}' "$work/one.out" | head -1
}
one_p50=$(metric procq-apply p50-µs)
one_p99=$(metric procq-apply p99-µs)
map1_p50=$(metric procq-map-of-one p50-µs)
map1_p99=$(metric procq-map-of-one p99-µs)
req_p50=$(metric nats-request-reply p50-µs)
req_p99=$(metric nats-request-reply p99-µs)
[ -n "$one_p50" ] && [ -n "$req_p50" ] || { log "OneTask failed (exit $rc): $(tail -5 "$work/one.out")"; failed=1; }
log "one task p50/p99: procq apply $one_p50/$one_p99 µs, map of one $map1_p50/$map1_p99 µs, request/reply $req_p50/$req_p99 µs"

# ---- 4 and 5. a standalone broker: idle consumer, producer memory ----------
b="$work/broker"
mkdir -p "$b"
export PROCQ_BROKER_STORE_DIR="$b/data" PROCQ_LOG_DIR="$b/logs" # the token file is in the store
url=""
PROCQ_BROKER_URL=nats://127.0.0.1:0 bin/broker >"$b/broker.out" 2>&1 &
bpid=$!
pids+=("$bpid")
for _ in $(seq 200); do # up to 20 s
  url=$(sed -n 's/^Broker: listening on \(nats:[^ ]*\).*/\1/p' "$b/broker.out" | head -1)
  [ -n "$url" ] && break
  kill -0 "$bpid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$url" ] || { log "broker did not start: $(tail -3 "$b/broker.out")"; failed=1; }
log "standalone broker at ${url:-nowhere}"

status_kib() { # pid field -> kB, empty once gone
  awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null
}

idle_kib=""
if [ -n "$url" ]; then
  PROCQ_BROKER_URL=$url bin/consumer --name C-1 >"$b/consumer.out" 2>&1 &
  cpid=$!
  pids+=("$cpid")
  started=""
  for _ in $(seq 200); do # up to 20 s to connect and declare the queue
    grep -qs 'consumer started' "$b"/logs/* && started=1 && break
    kill -0 "$cpid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -n "$started" ]; then
    sleep 3
    idle_kib=$(status_kib "$cpid" VmRSS)
    idle_hwm=$(status_kib "$cpid" VmHWM)
  fi
  [ -n "$idle_kib" ] || { log "consumer C-1 did not start: $(tail -3 "$b/consumer.out")"; failed=1; }
  log "idle consumer: VmRSS ${idle_kib:-?} kB (VmHWM ${idle_hwm:-?} kB)"
  stop_pid "$cpid"
  forget "$cpid"
fi

# producer_peak N: a map at automatic chunk with --json on the standalone
# broker, its output to a file, the producer's VmHWM sampled every 50 ms
# until it exits (at most 600 s); sets peak_kib and prate (inputs/s over
# the whole run, start-up included).
producer_peak() {
  peak_kib="" prate=""
  [ -n "$url" ] || return
  local ts0 ts1
  ts0=$(date +%s.%N)
  PROCQ_BROKER_URL=$url PROCQ_BROKER_EMBEDDED=false bin/producer pool --kind square --sleep 0s \
    --inputs "1..$1" --processes 2 --chunk-size 0 --json >"$b/producer.out" 2>"$b/producer.err" &
  local p=$! deadline=$(($(date +%s) + 600)) v
  pids+=("$p")
  while kill -0 "$p" 2>/dev/null; do
    v=$(status_kib "$p" VmHWM)
    [ -n "$v" ] && { [ -z "$peak_kib" ] || [ "$v" -gt "$peak_kib" ]; } && peak_kib=$v
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "producer pool $1 took over 600 s: stopped"
      stop_pid "$p"
      peak_kib=""
      break
    fi
    sleep 0.05
  done
  wait "$p" 2>/dev/null
  rc=$?
  ts1=$(date +%s.%N)
  forget "$p"
  local results
  results=$(grep -c '"index":' "$b/producer.out")
  if [ "$rc" != 0 ] || [ "$results" != "$1" ]; then
    log "producer pool $1 --json on the standalone broker failed (exit $rc, $results results): $(tail -3 "$b/producer.err")"
    peak_kib="" failed=1
  else
    prate=$(awk -v n="$1" -v a="$ts0" -v b="$ts1" 'BEGIN { printf "%.0f", n / (b - a) }')
  fi
  rm -f "$b/producer.out"
  log "producer, $1 inputs, auto chunk, --json, standalone broker: peak RSS ${peak_kib:-?} kB, ${prate:-?} inputs/s"
}
producer_peak "$N2"
peak1=$peak_kib prate1=$prate
producer_peak "$NMEM"
peak2=$peak_kib prate2=$prate
stop_pid "$bpid"
forget "$bpid"

# ---- 6. the cluster ----------------------------------------------------------
# bench/cluster.sh's parts a (R1 against R3) and c (failover) only; it prints
# "summary <name> <value>" lines for the table.
r3r1="" fo_gap="" fo_pause="" fo_elect=""
if [ "${BENCH_CLUSTER:-1}" != 0 ]; then
  log "cluster: PARTS=ac bench/cluster.sh 3 $N1 (R3 against R1, failover)"
  # Without the standalone broker's store and logs (exported above): the
  # cluster's processes find their own credentials in their own stores.
  PARTS=ac bounded 1800 "$work/cluster.out" env -u PROCQ_BROKER_STORE_DIR -u PROCQ_LOG_DIR bench/cluster.sh 3 "$N1"
  summary() { awk -v k="$1" '$1 == "summary" && $2 == k {print $3}' "$work/cluster.out" | tail -1; }
  r3r1=$(summary r3_over_r1_auto)
  fo_gap=$(summary failover_pause_minus_election_s)
  fo_pause=$(summary failover_pause_s)
  fo_elect=$(summary failover_election_s)
  [ -n "$r3r1" ] && [ -n "$fo_gap" ] || { log "cluster failed (exit $rc): $(tail -5 "$work/cluster.out")"; failed=1; }
  log "cluster: R3/R1 ${r3r1:-?}, failover pause ${fo_pause:-?} s, election ${fo_elect:-?} s, pause - election ${fo_gap:-?} s"
fi

# ---- the table --------------------------------------------------------------
read -r busy1 total1 < <(cpu_busy)
elapsed=$(($(date +%s) - t0))
cores=$(nproc)
busy=$(awk -v b="$((busy1 - busy0))" -v t="$((total1 - total0))" -v c="$cores" 'BEGIN { if (t > 0) printf "%.2f", b / t * c }')
# The CPU of everything this script started and reaped (bash's "times",
# children's user + system), so that the rest is other work on the machine.
times >"$work/times" # in this shell: a subshell has no children's times
own_cpu=$(awk 'NR == 2 { n = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); n += a[1] * 60 + a[2] } printf "%.1f", n }' "$work/times")
others=$(awk -v b="$((busy1 - busy0))" -v hz="$(getconf CLK_TCK)" -v own="$own_cpu" -v t="$elapsed" 'BEGIN { if (t > 0) { o = (b / hz - own) / t; printf "%.2f", (o < 0 ? 0 : o) } }')
mib() { awk -v k="$1" 'BEGIN { if (k == "") print "**failed**"; else printf "%.1f MiB", k / 1024 }'; }
mibv() { awk -v k="$1" 'BEGIN { if (k != "") printf "%.2f", k / 1024 }'; }
chunk_auto1=$(awk -v n="$N1" 'BEGIN { c = int((n + 7) / 8); print (c > 10000 ? 10000 : c) }')
chunk_py1=$(awk -v n="$N1" 'BEGIN { print int((n + 7) / 8) }')
chunk_auto2=$(awk -v n="$N2" 'BEGIN { c = int((n + 7) / 8); print (c > 10000 ? 10000 : c) }')
chunk_py2=$(awk -v n="$N2" 'BEGIN { print int((n + 7) / 8) }')
n1=$(num "$N1") n2=$(num "$N2") nc1=$(num "$NC1") nmem=$(num "$NMEM")
r_ap_1=$(ratio "$ap_1" "$pyd_1")
r_ap_2=$(ratio "$ap_2" "$pyd_2")
r_aq_1=$(ratio "$aq_1" "$pyd_1")
r_aq_2=$(ratio "$aq_2" "$pyd_2")
r_c1_1=$(ratio "$c1_1" "$py1_1")
r_c1_2=$(ratio "$c1_2" "$py1_2")
r_raw=$(ratio "$c1_1" "$raw")
r_pq=$(ratio "$aq_2" "$ap_2") # time printed / time quiet
r_one=$(ratio "$one_p50" "$req_p50")
r_one99=$(ratio "$one_p99" "$req_p99")
r_mem=$(ratio "$peak2" "$peak1")
le() { # value bound -> yes / no / n/a
  awk -v v="$1" -v b="$2" 'BEGIN { if (v == "" || v == "n/a") print "n/a"; else print (v + 0 <= b + 0) ? "yes" : "**no**" }'
}

echo
echo "make bench: $(date -u +%Y-%m-%d) $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes'), ${cores} cores, ${elapsed} s;" \
  "load average ${load_start} at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end;" \
  "${busy} of ${cores} cores busy on average, of which this run's processes ${own_cpu} CPU s and other work $others cores."
echo "Pool rows: median of ${r100k} rounds at ${nc1} and ${n1} inputs, ${r1m} at ${n2}; procq and Python rounds interleaved; printed: procq's result lines to a file."
echo
echo "| # | comparison | procq | reference | procq / reference | goal | met |"
echo "|---|---|---|---|---|---|---|"
echo "| 1a | pool, ${n1} inputs, automatic chunk (procq ${chunk_auto1}, Python ${chunk_py1}), printed, vs Python \`Pool.map\` default chunking (items/s) | $(num "$ap_1") | $(num "$pyd_1") | **${r_ap_1}** | >= 1.0 | $(meets "$r_ap_1" '>=' 1) |"
echo "| 1b | pool, ${n2} inputs, automatic chunk (procq ${chunk_auto2}, Python ${chunk_py2}), printed (items/s) | $(num "$ap_2") | $(num "$pyd_2") | **${r_ap_2}** | >= 1.0 | $(meets "$r_ap_2" '>=' 1) |"
echo "| 1c | pool, ${n1} inputs, automatic chunk, \`--quiet\` (items/s) | $(num "$aq_1") | $(num "$pyd_1") | **${r_aq_1}** | >= 1.2 | $(meets "$r_aq_1" '>=' 1.2) |"
echo "| 1d | pool, ${n2} inputs, automatic chunk, \`--quiet\` (items/s) | $(num "$aq_2") | $(num "$pyd_2") | **${r_aq_2}** | >= 1.2 | $(meets "$r_aq_2" '>=' 1.2) |"
echo "| 2a | pool, ${nc1} inputs, chunk 1, printed, vs Python \`Pool.map(chunksize=1)\` (items/s) | $(num "$c1_1") | $(num "$py1_1") | **${r_c1_1}** | >= 1.0 | $(meets "$r_c1_1" '>=' 1) |"
echo "| 2b | pool, ${n2} inputs, chunk 1, printed (items/s) | $(num "$c1_2") | $(num "$py1_2") | **${r_c1_2}** | >= 1.0 | $(meets "$r_c1_2" '>=' 1) |"
echo "| 3 | procq chunk 1 (row 2a, items/s) vs raw JetStream publish + pull consume + ack, 128 B, same broker code (msgs/s) | $(num "$c1_1") | $(num "$raw") | **${r_raw}** | >= 0.6 | $(meets "$r_raw" '>=' 0.6) |"
echo "| 4 | printed / quiet time, ${n2} inputs, automatic chunk (rows 1b, 1d) | $(num "$ap_2") | $(num "$aq_2") | **${r_pq}** | <= 1.2 | $(le "$r_pq" 1.2) |"
echo "| 5 | failover: longest pause in results after kill -9 of a node, minus the new stream leader's election, same run (s) | ${fo_pause:-n/a} | ${fo_elect:-n/a} | **${fo_gap:-n/a}** | <= 1 s | $(le "$fo_gap" 1) |"
echo "| 6 | R3 cluster / R1 embedded throughput, automatic chunk, ${n1} inputs (bench/cluster.sh a) | | | **${r3r1:-n/a}** | >= 0.75 | $(meets "$r3r1" '>=' 0.75) |"
echo "| 7a | one task, p50 (µs): procq \`Pool.Apply\` vs NATS request/reply, same broker | $(num "$one_p50") | $(num "$req_p50") | **${r_one}** | <= 2.0 | $(le "$r_one" 2) |"
echo "| 7b | one task, p99 (µs): procq \`Pool.Apply\` vs NATS request/reply | $(num "$one_p99") | $(num "$req_p99") | ${r_one99} | | |"
echo "| 8 | producer peak RSS (VmHWM), automatic chunk, \`--json\`, standalone broker: ${nmem} inputs vs ${n2} | $(mib "$peak2") | $(mib "$peak1") | **${r_mem}** | <= 1.5 | $(le "$r_mem" 1.5) |"
echo "| 9 | idle consumer \`bin/consumer --name C-1\`, VmRSS after 3 s | $(mib "$idle_kib") | | | < 20 MiB | $(meets "$(mibv "$idle_kib")" '<' 20) |"
echo
nums() { echo $* | awk '{ for (i = 1; i <= NF; i++) { s = sprintf("%.0f", $i); r = ""
  while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) }
  printf "%s%s", (i > 1 ? " / " : ""), s r } print "" }'; }
echo "Rounds: chunk 1 at ${nc1} $(nums $runs_c1_1) against Python $(nums $runs_py1_1); at ${n2} $(nums $runs_c1_2) against $(nums $runs_py1_2);" \
  "automatic at ${n1} printed $(nums $runs_ap_1), quiet $(nums $runs_aq_1) against Python $(nums $runs_pyd_1);" \
  "at ${n2} printed $(nums $runs_ap_2), quiet $(nums $runs_aq_2) against Python $(nums $runs_pyd_2)." \
  "Raw JetStream $(nums $raw_runs) msgs/s. A map of one (not Apply): p50 $(num "$map1_p50") µs, p99 $(num "$map1_p99") µs." \
  "Producer with --json on the standalone broker (row 8): $(num "$prate1") / $(num "$prate2") inputs/s, start-up included."
exit "$failed"
