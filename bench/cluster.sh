#!/usr/bin/env bash
# Scaling, side by side in one run (median of ROUNDS runs per row):
#   a. "producer pool" square --sleep 0s over 1..N at chunk 1 and at the
#      automatic chunk, on one embedded broker (R1, a fresh store per run)
#      and on a 3-node cluster of bin/broker on loopback with
#      queue.replicas 3 (a fresh cluster per run), prefetch 256 on both;
#   b. tasks/s against consumer processes (1 2 4 8 16) on one embedded
#      broker, square at --sleep 0s and at --sleep 1ms, chunk 1;
#   c. failover: kill -9 of a node during an R3 map (chunk 1, N inputs), in
#      turn the one leading PROCQ_TASKS, the one leading PROCQ_RESULTS and
#      one leading neither (VICTIMS="tasks results other"), FAILOVERS times
#      (default 3): the longest pause in the results against the time the
#      cluster took to elect new leaders for what the node led, both
#      measured in the same run. NB: inputs of b's 1ms series (20000).
# PARTS=ac (any of a, b, c; default abc) runs only those parts;
# FAILOVER_ONLY=1 is PARTS=c. Each part ends with "summary <name> <value>"
# lines for bench/all.sh: r3_over_r1_auto (a), failover_pause_s,
# failover_election_s, failover_pause_minus_election_s (medians) and
# failover_pause_minus_election_max_s (c).
# CHUNKS="1" (default "1 0", 0 the automatic chunk) the chunk sizes of a.
# PROCQ_* variables set by the caller reach every broker node and map
# (e.g. PROCQ_BROKER_SYNC_ALWAYS=true); the script sets only its own.
# The cluster is started by this script in a temp dir (free ports picked
# at random in 20000-29999, never 4222), stopped at the end or on Ctrl-C.
# Every wait is bounded. Logs stay in the printed temp dir when a run fails
# or with KEEP=1. By default it builds the working tree (make build);
# REV=<commit> builds that commit instead, from git, in the temp dir.
# Usage: [REV=HEAD] bench/cluster.sh [ROUNDS] [N]
# No "set -e": a failed map is reported and the run goes on; every step
# that must succeed is checked.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
parts=${PARTS:-abc}
chunks=${CHUNKS:-1 0}
[ "${FAILOVER_ONLY:-0}" = 1 ] && parts=c
rounds=${1:-3}
n=${2:-100000}
prefetch=256
failovers=${FAILOVERS:-3}
nb=${NB:-20000} # inputs of part b's 1ms series (1 process: about 30 s a run)
work=$(mktemp -d "${TMPDIR:-/tmp}/procq-cluster.XXXXXX") || exit 1
mkdir -p "$work/bin" "$work/logs"
# Our own copy of the executables, so a rebuild of bin/ during the run
# changes nothing; spawned consumers are the consumer beside the producer.
die() { echo "bench/cluster.sh: $*" >&2; rm -rf "$work"; exit 1; }
if [ -n "${REV:-}" ]; then
	rev=$(git rev-parse --short "$REV^{commit}") || die "no commit $REV"
	mkdir -p "$work/src"
	git archive "$rev" | tar -x -C "$work/src" || die "git archive $rev failed"
	(cd "$work/src" && go build -o "$work/bin/" ./cmd/broker ./cmd/producer ./cmd/consumer) || die "build of $rev failed"
	built="commit $rev (REV=$REV, built from git in the temp dir)"
else
	make -s build || die "make build failed"
	cp bin/broker bin/producer bin/consumer "$work/bin/" || die "copying bin/ failed"
	built="working tree at $(git rev-parse --short HEAD)"
	[ -n "$(git status --porcelain -- '*.go')" ] && built+=" with uncommitted Go changes"
fi
cd "$work" || die "cd $work" # no config.yaml here: every key at its default unless set below
echo "procq: $built; work dir $work" >&2

failed=0
cur=""            # the run in progress (a timeout process), for cleanup
node_pids=(0 0 0) # the cluster's broker processes
# stop_run: end the run in progress: its timeout process leads a process
# group holding the producer and the consumers it spawned.
stop_run() {
	local deadline=$((SECONDS + 15))
	[ -n "$cur" ] || return 0
	kill -TERM -- "-$cur" 2>/dev/null || kill -TERM "$cur" 2>/dev/null
	while kill -0 -- "-$cur" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
	kill -KILL -- "-$cur" 2>/dev/null
	wait "$cur" 2>/dev/null
	cur=""
}
# reap PGID LOGDIR: once a run's timeout process has exited, end what is
# left of its process group (a consumer that outlived its producer), and
# say so: it is a finding.
reap() {
	local deadline=$((SECONDS + 10))
	kill -0 -- "-$1" 2>/dev/null || return 0
	echo "leftover processes after the run (logs: $2): $(ps -o pid=,args= -g "$1" | cut -c1-100 | tr '\n' ';')" >&2
	failed=1
	kill -TERM -- "-$1" 2>/dev/null
	while kill -0 -- "-$1" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
	kill -KILL -- "-$1" 2>/dev/null
	return 0
}
cleanup() {
	trap - EXIT INT TERM
	stop_run
	stop_cluster
	rm -rf "$work/bin" "$work/src" "$work"/r1 "$work"/cluster "$work"/fifo
	if [ "$failed" = 0 ] && [ "${KEEP:-0}" != 1 ]; then
		rm -rf "$work"
	else
		echo "logs kept in $work/logs" >&2
	fi
}
trap cleanup EXIT
trap 'failed=1; exit 130' INT TERM

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "-"}'; }
ticks=$(getconf CLK_TCK)
cpu_of() { # pid -> user+system CPU seconds so far
	awk -v t="$ticks" '{sub(/.*\) /, ""); print ($12 + $13) / t}' "/proc/$1/stat" 2>/dev/null || echo 0
}

# --- the cluster -----------------------------------------------------------
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ports=()
while [ ${#ports[@]} -lt 6 ]; do
	p=$((20000 + RANDOM % 10000))
	case " ${ports[*]} " in *" $p "*) continue ;; esac
	port_free "$p" && ports+=("$p")
done
urls=nats://127.0.0.1:${ports[0]},nats://127.0.0.1:${ports[1]},nats://127.0.0.1:${ports[2]}
routes=nats-route://127.0.0.1:${ports[3]},nats-route://127.0.0.1:${ports[4]},nats-route://127.0.0.1:${ports[5]}
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/token"
chmod 600 "$work/token"
# Clients of the cluster: what deploy/cluster-local.env says, on our ports.
cluster_env=(PROCQ_BROKER_URL="$urls" PROCQ_BROKER_EMBEDDED=false
	PROCQ_BROKER_TOKEN_FILE="$work/token" PROCQ_QUEUE_REPLICAS=3)

start_cluster() { # logdir
	local logs=$1 i deadline
	rm -rf "$work/cluster"
	mkdir -p "$logs"
	for i in 0 1 2; do
		env PROCQ_LOG_DIR="$logs" PROCQ_BROKER_NAME=n$((i + 1)) \
			PROCQ_BROKER_URL=nats://127.0.0.1:${ports[i]} \
			PROCQ_BROKER_STORE_DIR="$work/cluster/n$((i + 1))" \
			PROCQ_BROKER_TOKEN_FILE="$work/token" \
			PROCQ_BROKER_CLUSTER_NAME=procq-bench \
			PROCQ_BROKER_CLUSTER_LISTEN=127.0.0.1:${ports[i + 3]} \
			PROCQ_BROKER_CLUSTER_ROUTES="$routes" \
			bin/broker >"$logs/n$((i + 1)).out" 2>&1 &
		node_pids[i]=$!
	done
	# Ready once every node knows the JetStream meta leader.
	deadline=$((SECONDS + 60))
	for i in 1 2 3; do
		until grep -q 'metadata leader' "$logs/broker-n$i.log" 2>/dev/null; do
			if [ $SECONDS -ge $deadline ]; then
				echo "cluster: node n$i has no meta leader after 60s (logs: $logs)" >&2
				failed=1
				return 1
			fi
			sleep 0.2
		done
	done
}

stop_cluster() {
	local i deadline
	for i in 0 1 2; do
		[ "${node_pids[i]}" != 0 ] && kill -TERM "${node_pids[i]}" 2>/dev/null
	done
	deadline=$((SECONDS + 15))
	for i in 0 1 2; do
		[ "${node_pids[i]}" = 0 ] && continue
		while kill -0 "${node_pids[i]}" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
		kill -KILL "${node_pids[i]}" 2>/dev/null
		wait "${node_pids[i]}" 2>/dev/null
		node_pids[i]=0
	done
	return 0
}

# --- one map ---------------------------------------------------------------
exec {tick_fd}<> <(:) # read -t on it: a sleep without a process
stat_cpu() {          # -> "busy total" jiffies of the whole machine
	local _c u n s i w q sq st _r
	read -r _c u n s i w q sq st _r </proc/stat
	echo "$((u + n + s + q + sq + st)) $((u + n + s + i + w + q + sq + st))"
}
# pool SIDE LOGDIR PROCESSES CHUNK SLEEP INPUTS sets result to
# "inputs/s chunk cpu_s cores_busy", or "-" when the map failed. SIDE is r1
# (embedded broker, fresh store) or r3 (fresh 3-node cluster). cpu_s: user +
# system CPU of every procq process of the run, start to exit; cores_busy:
# the whole machine's busy cores from the map's first output line (printed
# once the consumers are ready) to its summary line, from /proc/stat.
pool() {
	local side=$1 logs=$2 procs=$3 chunk=$4 sleep=$5 inputs=$6 limit=120
	local env=() cpu0=0 cpu1=0 i out rate size cpu s0="" s1="" lines rc=0 busy
	mkdir -p "$logs"
	if [ "$side" = r3 ]; then
		start_cluster "$logs" || { result=-; return; }
		env=("${cluster_env[@]}")
		limit=240
		for i in 0 1 2; do cpu0=$(awk -v a="$cpu0" -v b="$(cpu_of "${node_pids[i]}")" 'BEGIN {print a + b}'); done
	else
		rm -rf "$work/r1"
		env=(PROCQ_BROKER_URL=nats://127.0.0.1:0 PROCQ_BROKER_STORE_DIR="$work/r1" PROCQ_QUEUE_REPLICAS=1)
	fi
	: >"$logs/stdout"
	timeout -k 10 "$limit" /usr/bin/time -f '%e %U %S' -o "$logs/time" \
		env "${env[@]}" PROCQ_LOG_DIR="$logs" PROCQ_CONSUMERS_PREFETCH=$prefetch \
		bin/producer pool --kind square --sleep "$sleep" --inputs "1..$inputs" \
		--processes "$procs" --chunk-size "$chunk" --quiet >"$logs/stdout" 2>"$logs/stderr" &
	cur=$!
	while kill -0 "$cur" 2>/dev/null; do
		mapfile -t lines <"$logs/stdout"
		if [ -z "$s0" ] && [ ${#lines[@]} -ge 1 ]; then
			s0=$(stat_cpu)
		elif [ -n "$s0" ] && [ ${#lines[@]} -ge 2 ]; then
			s1=$(stat_cpu)
			break
		fi
		read -rt 0.02 -u "$tick_fd"
	done
	wait "$cur" || rc=$?
	reap "$cur" "$logs"
	cur=""
	if [ "$rc" != 0 ]; then
		echo "map failed: $side processes=$procs chunk=$chunk sleep=$sleep (exit $rc; logs: $logs)" >&2
		failed=1
	fi
	if [ "$side" = r3 ]; then
		for i in 0 1 2; do cpu1=$(awk -v a="$cpu1" -v b="$(cpu_of "${node_pids[i]}")" 'BEGIN {print a + b}'); done
		stop_cluster
	fi
	out=$(cat "$logs/stdout")
	if ! grep -q "^Pool: $inputs results in input order, 0 failed" <<<"$out"; then
		echo "map incomplete: $side processes=$procs chunk=$chunk sleep=$sleep (logs: $logs)" >&2
		failed=1
		result=-
		return
	fi
	rate=$(sed -n 's/.*(\([0-9]*\) inputs\/s)$/\1/p' <<<"$out")
	size=$(sed -n 's/.*, chunk size \([0-9]*\)$/\1/p' <<<"$out")
	cpu=$(awk -v d0="$cpu0" -v d1="$cpu1" 'NF == 3 && $1 ~ /^[0-9.]+$/ {printf "%.1f", $2 + $3 + (d1 - d0)}' "$logs/time" 2>/dev/null)
	busy=-
	if [ -n "$s1" ]; then
		busy=$(awk -v a="$s0" -v b="$s1" -v c="$(nproc)" 'BEGIN {split(a, x, " "); split(b, y, " ")
			if (y[2] > x[2]) printf "%.2f", c * (y[1] - x[1]) / (y[2] - x[2]); else print "-"}')
	fi
	result="$rate $size $cpu $busy"
}

col() { awk -v c="$1" '{print $c}'; }
med() { printf '%s' "$1" | grep -v '^-' | col "$2" | median; } # "runs" column -> median
per_task() { printf '%s' "$1" | grep -v '^-' | awk -v n="$2" '{printf "%.3f\n", $3 * 1000 / n}' | median; }
runs() { tr '\n' ' ' | sed 's/ $//; s/ / \/ /g'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a > 0 && b > 0) printf "%.2f", a / b; else print "-"}'; }
fmt() { # 12345 -> 12,345
	awk '{ if ($1 !~ /^[0-9]+$/) { print $1; next }
		s = $1; o = ""; while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }; print s o }'
}

echo "Binaries: $built. Machine: $(nproc) cores. broker.sync_always: ${PROCQ_BROKER_SYNC_ALWAYS:-default (true on the cluster nodes, false on R1)}."
t0=$SECONDS
load0=$(cut -d' ' -f1-3 /proc/loadavg)

# --- a. R1 against R3 --------------------------------------------------------
if [[ $parts == *a* ]]; then
echo "a. R1 against R3: $n inputs, $rounds rounds" >&2
declare -A res
for r in $(seq "$rounds"); do
	for chunk in $chunks; do
		for side in r1 r3; do
			pool "$side" "$work/logs/a-$side-chunk$chunk-$r" 2 "$chunk" 0s "$n"
			v=$result
			res[$side,$chunk]+="$v"$'\n'
			echo "  round $r $side chunk=$chunk: ${v:-failed} (inputs/s chunk cpu_s cores_busy)" >&2
		done
	done
done
echo
echo "### a. R1 against R3 ($n inputs, square --sleep 0s, 2 consumer processes, prefetch $prefetch, median of $rounds)"
echo
echo "| chunk | R1 embedded inputs/s | R3 cluster inputs/s | R3 / R1 | R1 runs | R3 runs | CPU s per run R1 / R3 | cores busy during map R1 / R3 |"
echo "|---|---|---|---|---|---|---|---|"
for chunk in $chunks; do
	a=$(med "${res[r1,$chunk]}" 1)
	b=$(med "${res[r3,$chunk]}" 1)
	size=$(printf '%s' "${res[r1,$chunk]}${res[r3,$chunk]}" | grep -v '^-' | col 2 | head -1)
	label=$chunk
	[ "$chunk" = 0 ] && label="auto (${size:-?})"
	printf '| %s | %s | %s | %s | %s | %s | %s / %s | %s / %s |\n' "$label" "$(fmt <<<"$a")" "$(fmt <<<"$b")" "$(ratio "$b" "$a")" \
		"$(printf '%s' "${res[r1,$chunk]}" | col 1 | fmt | runs)" "$(printf '%s' "${res[r3,$chunk]}" | col 1 | fmt | runs)" \
		"$(med "${res[r1,$chunk]}" 3)" "$(med "${res[r3,$chunk]}" 3)" "$(med "${res[r1,$chunk]}" 4)" "$(med "${res[r3,$chunk]}" 4)"
done
echo
echo "(CPU s per run: user + system CPU of every procq process of the run (producer, consumers, broker or the three cluster nodes) from its start to its exit. Cores busy: the whole machine's busy cores, of $(nproc), between the map's first and last output line, from /proc/stat; other users of the machine included.)"
echo "a done in $((SECONDS - t0)) s" >&2
[[ " $chunks " == *" 0 "* ]] && echo "summary r3_over_r1_auto $(ratio "$(med "${res[r3,0]}" 1)" "$(med "${res[r1,0]}" 1)")"
fi

# --- b. consumer processes ---------------------------------------------------
if [[ $parts == *b* ]]; then
t1=$SECONDS
echo "b. tasks/s against consumer processes, $rounds rounds" >&2
declare -A rb
for r in $(seq "$rounds"); do
	for p in 1 2 4 8 16; do
		pool r1 "$work/logs/b-sleep0-p$p-$r" "$p" 1 0s "$n"
		v=$result
		rb[0,$p]+="$v"$'\n'
		pool r1 "$work/logs/b-sleep1ms-p$p-$r" "$p" 1 1ms "$nb"
		w=$result
		rb[1,$p]+="$w"$'\n'
		echo "  round $r processes=$p: sleep 0s ${v:-failed}; sleep 1ms ${w:-failed}" >&2
	done
done
echo
echo "### b. Tasks/s against consumer processes (one embedded broker R1, chunk 1, prefetch $prefetch, median of $rounds)"
echo
echo "| processes | sleep 0s: tasks/s | vs 1 | cores busy | CPU ms per task | sleep 1ms: tasks/s | vs 1 | cores busy | CPU ms per task |"
echo "|---|---|---|---|---|---|---|---|---|"
base0=$(med "${rb[0,1]}" 1)
base1=$(med "${rb[1,1]}" 1)
for p in 1 2 4 8 16; do
	a=$(med "${rb[0,$p]}" 1)
	b=$(med "${rb[1,$p]}" 1)
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$p" "$(fmt <<<"$a")" "$(ratio "$a" "$base0")" "$(med "${rb[0,$p]}" 4)" \
		"$(per_task "${rb[0,$p]}" "$n")" "$(fmt <<<"$b")" "$(ratio "$b" "$base1")" "$(med "${rb[1,$p]}" 4)" "$(per_task "${rb[1,$p]}" "$nb")"
done
echo
echo "($n inputs at sleep 0s, $nb at sleep 1ms; runs: $(for p in 1 2 4 8 16; do printf '%s: %s; ' "$p" "$(printf '%s' "${rb[0,$p]}" | col 1 | runs)"; done | sed 's/; $//') (0s) and $(for p in 1 2 4 8 16; do printf '%s: %s; ' "$p" "$(printf '%s' "${rb[1,$p]}" | col 1 | runs)"; done | sed 's/; $//') (1ms). Cores busy: the whole machine's busy cores, of $(nproc), during the map. CPU ms per task: user + system CPU of the producer with its embedded broker and of the consumers, whole run, over the inputs.)"
echo "b done in $((SECONDS - t1)) s" >&2
fi

# --- c. failover -------------------------------------------------------------
if [[ $parts == *c* ]]; then
# leader_events LOGDIR: every leader change the cluster's nodes logged, one
# "epoch node group" line each, oldest first. The group is "meta" (the
# JetStream meta leader), a stream ("PROCQ_TASKS") or a stream's consumer
# ("PROCQ_TASKS>procq_demo"). A node logs these lines as it becomes leader,
# where it sends the matching $JS.EVENT.ADVISORY.*.LEADER_ELECTED advisory.
leader_events() {
	perl -MTime::Local=timegm -ne '
		next unless /^time=(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)(\.\d+)?(Z|[-+]\d\d:\d\d) .*?msg="([^"]*)".*? name=(n\d)/;
		my ($msg, $node) = ($9, $10);
		my $t = timegm($6, $5, $4, $3, $2 - 1, $1) + ($7 || 0);
		if ($8 ne "Z") { my ($sg, $h, $m) = $8 =~ /([-+])(\d\d):(\d\d)/; $t -= ($sg eq "-" ? -1 : 1) * ($h * 3600 + $m * 60) }
		my $g;
		if ($msg eq "Self is new JetStream cluster metadata leader") { $g = "meta" }
		elsif ($msg =~ /new stream leader for .\S+ > (\S+).$/) { $g = $1 }
		elsif ($msg =~ /new consumer leader for .\S+ > (\S+) > (\S+).$/) { $g = "$1>$2" }
		printf "%.3f %s %s\n", $t, $node, $g if defined $g;
	' "$1"/broker-n[123].log 2>/dev/null | sort -g
}
# The raft groups a map's results depend on: the meta leader (it creates the
# producer's results consumer), the two streams, and the queue's durable.
fo_groups="meta PROCQ_TASKS PROCQ_RESULTS PROCQ_TASKS>procq_demo"
# led_by LOGDIR EPOCH: "group=node" for each of fo_groups at that time.
led_by() {
	leader_events "$1" | awk -v t="$2" -v groups="$fo_groups" '$1 < t {l[$3] = $2}
		END {n = split(groups, g, " "); for (i = 1; i <= n; i++) printf "%s=%s ", g[i], (g[i] in l ? l[g[i]] : "?")}'
}
# elections LOGDIR EPOCH VICTIM: for each group VICTIM led at EPOCH, the
# seconds from EPOCH until a surviving node logged itself its new leader
# ("-" when none did before the run ended): "group:seconds ..." on one line.
elections() {
	leader_events "$1" | awk -v t="$2" -v v="$3" -v groups="$fo_groups" '
		BEGIN {n = split(groups, g, " "); for (i = 1; i <= n; i++) want[g[i]] = 1}
		!($3 in want) {next}
		$1 < t {l[$3] = $2; next}
		($3 in l) && l[$3] == v && !($3 in e) && $2 != v {e[$3] = $1 - t}
		END {for (i = 1; i <= n; i++) if ((g[i] in l) && l[g[i]] == v) printf "%s:%s ", g[i], (g[i] in e ? sprintf("%.2f", e[g[i]]) : "-")}'
}
# The victims, in turn: the PROCQ_TASKS leader, the PROCQ_RESULTS leader,
# and a node leading neither stream (VICTIMS="tasks results other" by
# default; any order, any repeats).
read -ra victims <<<"${VICTIMS:-tasks results other}"
t2=$SECONDS
echo "c. failover: kill -9 of a node (${victims[*]}, in turn), $failovers times" >&2
fo=()
fo_pauses=()
fo_elections=()
rows=()
for k in $(seq "$failovers"); do
	kind=${victims[(k - 1) % ${#victims[@]}]}
	logs=$work/logs/c-failover-$k
	mkdir -p "$logs"
	row="| $k | $kind | - | - | - | - | - | - | - | - | - | - |"
	ts_pid=""
	if start_cluster "$logs"; then
		rm -f "$work/fifo"
		mkfifo "$work/fifo"
		: >"$logs/stdout.ts"
		# Every stdout line with the time it arrived.
		perl -MTime::HiRes=time -ne 'BEGIN {$| = 1} printf "%.6f %s", time, $_' <"$work/fifo" >"$logs/stdout.ts" &
		ts_pid=$!
		# CLIENT_LOG_LEVEL=debug: the producer's and consumers' logs say
		# what each task and result did (to study a pause; slower).
		timeout -k 10 240 env "${cluster_env[@]}" PROCQ_LOG_DIR="$logs" PROCQ_CONSUMERS_PREFETCH=$prefetch \
			${CLIENT_LOG_LEVEL:+PROCQ_LOG_LEVEL=$CLIENT_LOG_LEVEL} \
			bin/producer pool --kind square --sleep 0s --inputs "1..$n" --processes 2 --chunk-size 1 \
			>"$work/fifo" 2>"$logs/stderr" &
		cur=$!
		kill_at=$((n / 5))
		deadline=$((SECONDS + 120))
		until grep -q "^[0-9.]* square($kill_at) = " "$logs/stdout.ts" || [ $SECONDS -ge $deadline ] || ! kill -0 "$cur" 2>/dev/null; do
			sleep 0.05
		done
		kt=""
		victim=""
		led=$(led_by "$logs" "$(now)")
		lead() { sed -n "s/.*\(^\| \)$1=\(n[0-9]\).*/\2/p" <<<"$led"; }
		case $kind in
		tasks) victim=$(lead PROCQ_TASKS) ;;
		results) victim=$(lead PROCQ_RESULTS) ;;
		other) # leading neither stream; of those, the one leading fewest groups
			victim=$(for v in n1 n2 n3; do
				[ "$v" = "$(lead PROCQ_TASKS)" ] || [ "$v" = "$(lead PROCQ_RESULTS)" ] && continue
				echo "$(grep -o "=$v" <<<"$led" | wc -l) $v"
			done | sort -n | head -1 | cut -d' ' -f2) ;;
		esac
		case $victim in
		n1 | n2 | n3)
			if grep -q "^[0-9.]* square($kill_at) = " "$logs/stdout.ts"; then
				vpid=${node_pids[${victim#n} - 1]}
				kt=$(now)
				kill -KILL "$vpid"
				{ wait "$vpid"; } 2>/dev/null # reaped here, without bash's "Killed" notice
				node_pids[${victim#n} - 1]=0
			fi
			;;
		esac
		rc=0
		wait "$cur" || rc=$?
		reap "$cur" "$logs"
		cur=""
		wait "$ts_pid" || true
		if [ -z "$kt" ]; then
			echo "  failover $k: no kill ($kind: victim '$victim', leaders $led; map at square($kill_at): $(grep -c square "$logs/stdout.ts") lines); logs: $logs" >&2
			failed=1
		else
			[ "$rc" = 0 ] || { echo "  failover $k: producer exit $rc; logs: $logs" >&2; failed=1; }
			on() { sed -n 's/.*msg="connected to broker" .*server=\(n[0-9]\).*/\1/p' "$1" 2>/dev/null | head -1; }
			prod_on=$(on "$logs/producer.log")
			cons_on=$(for f in "$logs"/consumer-C-*.log; do on "$f"; done | sort | tr '\n' ' ' | sed 's/ $//; s/ /, /g')
			# The groups the victim led and how long each took to elect a new
			# leader; the election is the longest of them (0: it led none).
			el=$(elections "$logs" "$kt" "$victim")
			election=$(tr ' ' '\n' <<<"$el" | awk -F: 'NF == 2 {if ($2 == "-") bad = 1; else if ($2 > m) m = $2} END {if (bad) print "-"; else printf "%.2f\n", m + 0}')
			# pause: the longest time without a result line, of the gaps that
			# end after the kill (a gap that began before it counts whole).
			read -r first resumed pause <<<"$(awk -v k="$kt" '$2 ~ /^square\(/ {
				if ($1 > k) {
					if (first == "") first = $1 - k
					if (prev != "" && $1 - prev > gap) { gap = $1 - prev; res = $1 - k }
				}
				prev = $1
			} END {printf "%.2f %.2f %.2f\n", first, res, gap}' "$logs/stdout.ts")"
			over=$(awk -v p="$pause" -v e="$election" 'BEGIN {if (e == "-") print "-"; else printf "%.2f", p - e}')
			exact=$(awk -v n="$n" '$2 ~ /^square\(/ {
				i++; x = $2; gsub(/[^0-9]/, "", x)
				if (x + 0 != i || $4 + 0 != (x + 0) * (x + 0)) bad++
			} END {print (i == n && bad == 0) ? "yes (" i ")" : "NO (" i " lines, " bad + 0 " wrong)"}' "$logs/stdout.ts")
			[ "${exact%% *}" = yes ] || failed=1
			if [ "$over" != - ]; then
				fo+=("$over")
				fo_pauses+=("$pause")
				fo_elections+=("$election")
			fi
			led_groups=$(tr ' ' '\n' <<<"$el" | awk -F: 'NF == 2 {printf "%s%s %s s", (n++ ? ", " : ""), $1, $2} END {if (!n) printf "none"}')
			row="| $k | $kind: $victim | $led_groups | $election | ${prod_on:-?} | ${cons_on:-?} | $first | $resumed | **$pause** | **$over** | $exact |"
			echo "  failover $k: killed $victim ($kind; led: $led_groups); pause $pause s, election $election s, pause - election $over s" >&2
		fi
	fi
	rows+=("$row")
	stop_cluster
	[ -n "${ts_pid:-}" ] && kill "$ts_pid" 2>/dev/null
	wait 2>/dev/null || true
done
fo_median=$(printf '%s\n' "${fo[@]}" | median)
echo
echo "### c. Failover: kill -9 of a node during an R3 map ($n inputs, chunk 1, prefetch $prefetch, killed once square($((n / 5))) is printed)"
echo
echo "| run | killed | what it led: new leader after (s) | election (s) | producer on | consumers on | first result line after kill (s) | map resumed after (s) | longest pause (s) | pause - election (s) | results exact, in order |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo "| median | | | | | | | | | **$fo_median** | |"
echo
echo "(What it led: of the raft groups a map's results depend on (the JetStream meta leader, PROCQ_TASKS, PROCQ_RESULTS and the queue's durable procq_demo), those the killed node led, each with the time until a surviving node logged itself their new leader, which is when it sends the LEADER_ELECTED advisory; the election is the longest of them, 0 when it led none. Longest pause: the longest time without a result line on the producer's stdout, of the gaps that end after the kill. Resumed: the end of that gap, from the kill. First result line: results the producer already held when the node died.)"
echo
echo "WARN and ERROR log lines of each failover run (start-up route noise left out):"
for k in $(seq "$failovers"); do
	printf -- '- run %s: %s\n' "$k" "$(cat "$work/logs/c-failover-$k"/*.log 2>/dev/null |
		grep -E 'level=(WARN|ERROR)' |
		grep -v -e 'Error trying to connect to route' -e 'Waiting for routing' -e 'has not established contact with a meta leader' |
		sed -n 's/.*level=\([A-Z]*\) msg="\([^"]*\)" role=\([a-z-]*\).*/\3 \1 "\2"/p' |
		sort | uniq -c | sort -rn |
		awk '{c = $1; $1 = ""; printf "%s%s x%s", (NR > 1 ? "; " : ""), substr($0, 2), c} END {if (!NR) printf "none"}')"
done
echo
echo "Load average (1, 5, 15 min) at the start: $load0; at the end: $(cut -d' ' -f1-3 /proc/loadavg). Total $((SECONDS - t0)) s."
echo "c done in $((SECONDS - t2)) s; total $((SECONDS - t0)) s" >&2
echo "summary failover_pause_s $(printf '%s\n' "${fo_pauses[@]}" | median)"
echo "summary failover_election_s $(printf '%s\n' "${fo_elections[@]}" | median)"
echo "summary failover_pause_minus_election_s $fo_median"
echo "summary failover_pause_minus_election_max_s $(printf '%s\n' "${fo[@]}" | sort -g | tail -1)"
fi
