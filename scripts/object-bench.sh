#!/usr/bin/env bash
# Upload latency and throughput of single-node local mode vs the object-storage mirror
# (docs/scaleout.md, "Object storage mirror: cost"), side by side in one run on loopback:
#
#   scripts/object-bench.sh CLUSTER_DIR [SKAB_BIN]
#
# CLUSTER_DIR is a running `scripts/cluster.sh up CLUSTER_DIR`. Starts two `skab serve` (one
# local, one with [storage.object] on that cluster, a fresh bucket prefix), and against each
# runs CLIENTS threads doing UPLOADS PUTs of SIZE bytes each in all; prints p50/p99/throughput.
set -euo pipefail
CL="$1"; SKAB="${2:-target/release/skab}"
CLIENTS="${CLIENTS:-8}" UPLOADS="${UPLOADS:-800}" SIZE="${SIZE:-60000}" PORT="${PORT:-27450}"
. "$CL/cluster.env"
W="$(mktemp -d)"; pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
echo "$S3_SECRET_KEY" >"$W/secret"
eps=""; for e in $S3_ENDPOINTS; do eps="$eps\"$e\","; done
cat >"$W/object.toml" <<EOT
[storage.object]
endpoints = [${eps%,}]
region = "$S3_REGION"
bucket = "$S3_BUCKET"
access_key = "$S3_ACCESS_KEY"
secret_key_file = "$W/secret"
prefix = "bench-$(date +%s)/"
EOT
: >"$W/local.toml"
for mode in local object; do
  echo "pw-bench-123" | "$SKAB" user add --data-dir "$W/$mode" --tenant t --user u --password-stdin >/dev/null
done
"$SKAB" serve --data-dir "$W/local" --listen "127.0.0.1:$PORT" --config "$W/local.toml" >"$W/local.log" 2>&1 &
pids+=("$!")
"$SKAB" serve --data-dir "$W/object" --listen "127.0.0.1:$((PORT + 1))" --config "$W/object.toml" >"$W/object.log" 2>&1 &
pids+=("$!")
for p in "$PORT" "$((PORT + 1))"; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$p/healthz" >/dev/null && break; sleep 0.2; done
done
for rnd in 1 2; do
  for mode in local object; do
    p="$PORT"; [ "$mode" = object ] && p="$((PORT + 1))"
    printf 'round %s %-6s: ' "$rnd" "$mode"
    python3 "$(dirname "$0")/put-loop.py" "$CLIENTS" "$UPLOADS" "$SIZE" pw-bench-123 t "$p" "r$rnd"
  done
done
