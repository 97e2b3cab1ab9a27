#!/usr/bin/env bash
# A 3-node procq cluster on this machine, for trying it out: three bin/broker
# processes on loopback (client ports 4222-4224, route ports 6222-6224), each
# with its own store under data/cluster/, one shared token, one log file each
# (logs/broker-n1.log ...). Ctrl-C stops all three.
#
#   deploy/cluster-local.sh            # then, in another terminal:
#   source deploy/cluster-local.env    # point clients at the cluster
#   bin/producer pool                  # a map on replicated streams (R3)
#   bin/broker status                  # leaders and replicas
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x bin/broker ] || make build

dir=data/cluster
mkdir -p "$dir"
token_file=$dir/token
if [ ! -s "$token_file" ]; then
	# Every node must share one client token; the route password derives
	# from it.
	(umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$token_file")
fi

routes=nats-route://127.0.0.1:6222,nats-route://127.0.0.1:6223,nats-route://127.0.0.1:6224
urls=nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224

cat >deploy/cluster-local.env <<ENV
# Written by deploy/cluster-local.sh: clients of the local 3-node cluster.
export PROCQ_BROKER_URL=$urls
export PROCQ_BROKER_EMBEDDED=false
export PROCQ_BROKER_TOKEN_FILE=$PWD/$token_file
export PROCQ_QUEUE_REPLICAS=3
ENV

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for i in 1 2 3; do
	PROCQ_BROKER_NAME=n$i \
	PROCQ_BROKER_URL=nats://127.0.0.1:$((4221 + i)) \
	PROCQ_BROKER_STORE_DIR=$dir/n$i \
	PROCQ_BROKER_TOKEN_FILE=$token_file \
	PROCQ_BROKER_CLUSTER_NAME=procq \
	PROCQ_BROKER_CLUSTER_LISTEN=127.0.0.1:$((6221 + i)) \
	PROCQ_BROKER_CLUSTER_ROUTES=$routes \
		bin/broker &
	pids+=($!)
done
echo "cluster of 3 nodes starting; clients: source deploy/cluster-local.env"
wait
