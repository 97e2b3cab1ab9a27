#!/usr/bin/env bash
# make-certs.sh DIR: a throw-away private CA and one certificate signed by
# it for 127.0.0.1 and localhost, usable by the brokers (client port and
# routes) and by the clients (mutual TLS), for the local 3-node cluster
# (deploy/cluster-local.sh) or deploy/nats-server-secure.conf.
#
#   DIR/ca.pem            the CA: broker.tls.ca on every process
#   DIR/node.pem, DIR/node-key.pem
#                         broker.tls.cert and broker.tls.key
#
# For machines of your own, add their names and addresses to SAN below, or
# use the certificates your organisation issues. Keys are written 0600.
set -euo pipefail
dir=${1:?usage: make-certs.sh DIR}
days=${DAYS:-30}
SAN=${SAN:-"IP:127.0.0.1,IP:::1,DNS:localhost"}
mkdir -p "$dir"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
  -subj "/CN=procq throw-away CA" -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=procq node" -keyout "$dir/node-key.pem" -out "$dir/node.csr" 2>/dev/null
openssl x509 -req -in "$dir/node.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" -CAcreateserial \
  -days "$days" -out "$dir/node.pem" \
  -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature\n' "$SAN") 2>/dev/null
rm -f "$dir/node.csr" "$dir/ca.srl"
chmod 0644 "$dir/ca.pem" "$dir/node.pem"
echo "CA $dir/ca.pem; certificate $dir/node.pem, key $dir/node-key.pem (valid $days days)"
