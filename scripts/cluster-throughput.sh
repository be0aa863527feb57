#!/usr/bin/env bash
# Upload throughput from 1 to 3 nodes (docs/scaleout.md, "Throughput from 1 to 3 nodes"): a
# closed loop of CLIENTS threads, each PUTting as fast as it gets answers, against (a) one
# object-mirrored `skab` (the same Garage, its own prefix) and (b) the 3 nodes of a running
# `scripts/cluster.sh up` cluster (clients round-robin over the nodes, tenants spread over the
# cells). Two rounds alternating; loopback only.
#
#   scripts/cluster.sh up /tmp/cl && scripts/cluster-throughput.sh /tmp/cl
#
# CLIENTS [32], UPLOADS [2400] in all per run, SIZE [60000] bytes, TENANTS [12], PORT [27460].
set -euo pipefail
for v in SKAB_BIN SKAB_CONFIG SKAB_NODE_CONFIGS; do export -n "$v" 2>/dev/null || true; done
CL="$(cd "$1" && pwd)"
CLIENTS="${CLIENTS:-32}" UPLOADS="${UPLOADS:-2400}" SIZE="${SIZE:-60000}"
TENANTS="${TENANTS:-12}" PORT="${PORT:-27460}"
# shellcheck disable=SC1091
. "$CL/cluster.env"
SKAB="$SKAB_BIN"
W="$(mktemp -d)"; pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
eps=""; for e in $S3_ENDPOINTS; do eps="$eps\"$e\","; done
cat >"$W/object.toml" <<EOT
[storage.object]
endpoints = [${eps%,}]
region = "$S3_REGION"
bucket = "$S3_BUCKET"
access_key = "$S3_ACCESS_KEY"
secret_key_file = "$S3_SECRET_KEY_FILE"
prefix = "throughput-$(date +%s)/"
EOT
for t in $(seq 1 "$TENANTS"); do
  echo "pw-throughput-1" | "$SKAB" user add --data-dir "$W/one" --config "$W/object.toml" \
    --tenant "tp$t" --user u --password-stdin >/dev/null
  echo "pw-throughput-1" | "$SKAB" user add --config "$SKAB_CONFIG" \
    --tenant "tp$t" --user u --password-stdin >/dev/null 2>&1 || true
done
"$SKAB" serve --data-dir "$W/one" --listen "127.0.0.1:$PORT" --config "$W/object.toml" \
  >"$W/one.log" 2>&1 &
pid="$!"
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
tenants="$(seq -s, -f 'tp%g' 1 "$TENANTS")"
nodes="$(for u in $NODES; do printf '%s,' "${u##*:}"; done)"
for rnd in 1 2; do
  printf 'round %s 1 node : ' "$rnd"
  python3 "$(dirname "$0")/put-loop.py" "$CLIENTS" "$UPLOADS" "$SIZE" pw-throughput-1 \
    "$tenants" "$PORT" "r$rnd-1"
  printf 'round %s 3 nodes: ' "$rnd"
  python3 "$(dirname "$0")/put-loop.py" "$CLIENTS" "$UPLOADS" "$SIZE" pw-throughput-1 \
    "$tenants" "${nodes%,}" "r$rnd-3"
done
