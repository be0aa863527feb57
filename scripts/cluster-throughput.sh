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
python3 - "$PORT" "$CLIENTS" "$UPLOADS" "$SIZE" "$TENANTS" "$NODES" <<'PY'
import base64, http.client, os, sys, threading, time
port, clients, uploads, size, tenants = (int(a) for a in sys.argv[1:6])
nodes = [int(u.rsplit(":", 1)[1]) for u in sys.argv[6].split()]
def run(ports, tag):
    lat, lock, errors = [], threading.Lock(), [0]
    def worker(w):
        t = f"tp{1 + w % tenants}"
        auth = "Basic " + base64.b64encode(f"u@{t}:pw-throughput-1".encode()).decode()
        c = http.client.HTTPConnection("127.0.0.1", ports[w % len(ports)], timeout=120)
        for i in range(w, uploads, clients):
            body = os.urandom(size)
            s = time.perf_counter()
            c.request("PUT", f"/dav/{t}/u/{tag}-{i}.bin", body, {"Authorization": auth})
            r = c.getresponse(); r.read()
            d = time.perf_counter() - s
            with lock:
                lat.append(d)
                if r.status not in (201, 204): errors[0] += 1
    t0 = time.perf_counter()
    ts = [threading.Thread(target=worker, args=(w,)) for w in range(clients)]
    [x.start() for x in ts]; [x.join() for x in ts]
    wall = time.perf_counter() - t0
    lat.sort()
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000
    return f"{len(lat)} PUTs, {errors[0]} errors, p50 {q(0.5):.0f} ms, p99 {q(0.99):.0f} ms, {len(lat)/wall:.0f} uploads/s"
for rnd in (1, 2):
    for mode, ports in (("1 node ", [port]), ("3 nodes", nodes)):
        print(f"round {rnd} {mode}: {run(ports, f'r{rnd}-{mode[0]}')}", flush=True)
PY
