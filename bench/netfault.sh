#!/usr/bin/env bash
# The cluster under network faults, by hand (RELIABILITY.md, "Cluster
# under network faults"): three bin/broker nodes n1-n3, each in its own
# network namespace on a private bridge (10.213.S.0/24, S=250 unless
# NETFAULT_S says otherwise; the host is 10.213.S.1 on it), and faults made
# with ip alone: a link down, blackhole routes, SIGSTOP, kill -9. Nothing
# leaves this machine. Needs root and iproute2; run `make build` first.
#
#   bench/netfault.sh up            make the network, start n1-n3, print the client env
#   bench/netfault.sh status        broker status: which node leads what (once a map made the streams)
#   bench/netfault.sh isolate nX    take nX's link down (no connection is closed)
#   bench/netfault.sh split nX      nX alone | the other two (the host reaches all)
#   bench/netfault.sh drop nX nY    drop what nX sends to nY (one direction)
#   bench/netfault.sh heal          undo every isolate, split and drop
#   bench/netfault.sh pause nX      SIGSTOP nX;   resume nX: SIGCONT
#   bench/netfault.sh kill nX       kill -9 nX;   start nX: start it again
#   bench/netfault.sh down          stop the nodes, remove the network (also after a crash)
#   bench/netfault.sh run [NAME]    the automated scenarios (go test, full faults),
#                                   NAME a regexp of scenario names, e.g. 'leader_cut_off'
#
# A map by hand, from another shell once `up` ran:
#   set -a; . /tmp/procq-netfault/client.env; set +a
#   bin/producer pool --kind square --inputs 1..6000 --sleep 1ms --chunk-size 1 --processes 2
# and, while it runs: bench/netfault.sh status; bench/netfault.sh isolate n2;
# sleep 20; bench/netfault.sh heal.
set -euo pipefail
cd "$(dirname "$0")/.."
S=${NETFAULT_S:-250}
DIR=${NETFAULT_DIR:-/tmp/procq-netfault}
BR=pqnf${S}b
ns() { echo "pqnf-$S-$(($1 - 1))"; }        # n1 -> pqnf-250-0
veth() { echo "pqnf${S}v$(($1 - 1))"; }
addr() { echo "10.213.$S.$(($1 + 1))"; }   # n1 -> 10.213.S.2
num() { [[ $1 =~ ^n([123])$ ]] || { echo "node $1: want n1, n2 or n3" >&2; exit 2; }; echo "${BASH_REMATCH[1]}"; }
pidof_node() { cat "$DIR/n$1.pid"; }

need_root() {
  [ "$(id -u)" = 0 ] || { echo "network namespaces need root" >&2; exit 2; }
  command -v ip >/dev/null || { echo "no ip command: apt-get install iproute2" >&2; exit 2; }
}

common_env() {
  cat <<EOF
PROCQ_BROKER_EMBEDDED=false
PROCQ_BROKER_TOKEN=netfault-token
PROCQ_QUEUE_REPLICAS=3
PROCQ_BROKER_CONNECT_TIMEOUT=60s
PROCQ_LOG_LEVEL=debug
PROCQ_LOG_DIR=$DIR/logs
EOF
}

start_node() {
  local i=$1 routes=""
  for j in 1 2 3; do routes+="${routes:+,}nats-route://$(addr "$j"):6222"; done
  (
    set -a
    eval "$(common_env)"
    PROCQ_BROKER_NAME=n$i
    PROCQ_BROKER_URL=nats://$(addr "$i"):4222
    PROCQ_BROKER_STORE_DIR=$DIR/data-n$i
    PROCQ_BROKER_CLUSTER_NAME=procq-netfault
    PROCQ_BROKER_CLUSTER_LISTEN=$(addr "$i"):6222
    PROCQ_BROKER_CLUSTER_ROUTES=$routes
    set +a
    exec ip netns exec "$(ns "$i")" "$PWD/bin/broker" >>"$DIR/n$i.out" 2>&1
  ) &
  echo $! >"$DIR/n$i.pid"
  for _ in $(seq 100); do
    grep -q 'Broker: listening on' "$DIR/n$i.out" 2>/dev/null && { echo "n$i listening on $(addr "$i"):4222 (pid $!)"; return; }
    sleep 0.2
  done
  echo "n$i did not listen within 20 s; see $DIR/n$i.out" >&2
  exit 1
}

case "${1:-}" in
up)
  need_root
  [ -x bin/broker ] || { echo "no bin/broker: run make build" >&2; exit 2; }
  mkdir -p "$DIR/logs"
  ip link add "$BR" type bridge
  ip addr add "10.213.$S.1/24" dev "$BR"
  ip link set "$BR" up
  for i in 1 2 3; do
    ip netns add "$(ns "$i")"
    ip link add "$(veth "$i")" type veth peer name "$(veth "$i")p"
    ip link set "$(veth "$i")p" netns "$(ns "$i")"
    ip link set "$(veth "$i")" master "$BR" up
    ip -n "$(ns "$i")" link set lo up
    ip -n "$(ns "$i")" link set "$(veth "$i")p" name eth0
    ip -n "$(ns "$i")" addr add "$(addr "$i")/24" dev eth0
    ip -n "$(ns "$i")" link set eth0 up
  done
  for i in 1 2 3; do start_node "$i"; done
  { common_env; echo "PROCQ_BROKER_URL=nats://$(addr 1):4222,nats://$(addr 2):4222,nats://$(addr 3):4222"; } >"$DIR/client.env"
  echo "clients: set -a; . $DIR/client.env; set +a"
  ;;
status)
  set -a; . "$DIR/client.env"; set +a
  bin/broker status
  ;;
isolate) need_root; ip link set "$(veth "$(num "$2")")" down ;;
split)
  need_root; i=$(num "$2")
  for j in 1 2 3; do
    [ "$j" = "$i" ] && continue
    ip -n "$(ns "$i")" route add blackhole "$(addr "$j")/32"
    ip -n "$(ns "$j")" route add blackhole "$(addr "$i")/32"
  done
  ;;
drop) need_root; ip -n "$(ns "$(num "$2")")" route add blackhole "$(addr "$(num "$3")")/32" ;;
heal)
  need_root
  for i in 1 2 3; do
    ip link set "$(veth "$i")" up
    ip -n "$(ns "$i")" route show type blackhole | while read -r _ dst _; do
      ip -n "$(ns "$i")" route del blackhole "$dst"
    done
  done
  ;;
pause) kill -STOP "$(pidof_node "$(num "$2")")" ;;
resume) kill -CONT "$(pidof_node "$(num "$2")")" ;;
kill) kill -9 "$(pidof_node "$(num "$2")")" ;;
start) need_root; start_node "$(num "$2")" ;;
down)
  need_root
  for i in 1 2 3; do
    if [ -f "$DIR/n$i.pid" ]; then kill -CONT "$(pidof_node "$i")" 2>/dev/null || true; kill -9 "$(pidof_node "$i")" 2>/dev/null || true; fi
    ip netns del "$(ns "$i")" 2>/dev/null || true
    ip link del "$(veth "$i")" 2>/dev/null || true
  done
  ip link del "$BR" 2>/dev/null || true
  rm -rf "$DIR"
  echo "network 10.213.$S.0/24 removed"
  ;;
run)
  need_root
  NETFAULT_FULL=1 ${GO:-go} test -race -count=1 -v -timeout 30m -run "^TestNetFault(Links)?\$/${2:-.}" ./e2e |
    grep -E '^\s+netfault_test.go:[0-9]+: \||^\s*--- (PASS|FAIL|SKIP)|^(ok|FAIL)\s' || true
  ;;
*)
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 2
  ;;
esac
