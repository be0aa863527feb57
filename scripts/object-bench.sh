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
python3 - "$PORT" "$CLIENTS" "$UPLOADS" "$SIZE" <<'PY'
import base64, http.client, os, sys, threading, time
port, clients, uploads, size = (int(a) for a in sys.argv[1:5])
auth = "Basic " + base64.b64encode(b"u@t:pw-bench-123").decode()
def run(p, tag):
    lat, lock, errors = [], threading.Lock(), [0]
    def worker(w):
        c = http.client.HTTPConnection("127.0.0.1", p, timeout=60)
        for i in range(w, uploads, clients):
            body = os.urandom(size)
            t = time.perf_counter()
            c.request("PUT", f"/dav/t/u/{tag}-{i}.bin", body, {"Authorization": auth})
            r = c.getresponse(); r.read()
            d = time.perf_counter() - t
            with lock:
                lat.append(d)
                if r.status not in (201, 204): errors[0] += 1
    t0 = time.perf_counter()
    ts = [threading.Thread(target=worker, args=(w,)) for w in range(clients)]
    [t.start() for t in ts]; [t.join() for t in ts]
    wall = time.perf_counter() - t0
    lat.sort()
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000
    return f"{len(lat)} PUTs, {errors[0]} errors, p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms, {len(lat)/wall:.0f} uploads/s, {len(lat)*size/wall/1e6:.1f} MB/s"
for rnd in (1, 2):
    for mode, p in (("local", port), ("object", port + 1)):
        print(f"round {rnd} {mode:6}: {run(p, f'r{rnd}')}", flush=True)
PY
