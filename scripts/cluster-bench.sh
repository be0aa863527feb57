#!/usr/bin/env bash
# Cluster benchmark (issue 17, docs/scaleout.md "Commands"): the same exam-peak and login-storm
# load against (a) a single-node skab on the local disk, (b) a single-node skab mirrored into
# the cluster's Garage (object storage), (c) the 3-node cluster, then a fail-over run: during
# the exam peak against the cluster, one node is killed with SIGKILL; measured: how long until
# every cell answers again, and that no acknowledged upload is lost (read back through the
# surviving nodes). Prints one table; loopback only.
#
#   scripts/cluster.sh up /tmp/cl && scripts/cluster-bench.sh /tmp/cl
#
# CLUSTER_DIR is a running `scripts/cluster.sh up` with its 3 skab nodes (DIR/cluster.env:
# NODES, NODE_PIDS, SKAB_CONFIG, JWT_SECRET, ...); one started with SKAB_NODES=0 (Garage and
# etcd only) serves MODES="local object" FAILOVER=0. The cluster is left running; a killed node
# is started again (`cluster.sh restart-node`) at the end. The single nodes are started here
# and stopped on exit.
#
# Scaled down to finish in a few minutes on a small machine (every knob an environment
# variable, default in brackets):
#   USERS [2000] users in TENANTS [36] tenants (enough tenants that every cell of 12 holds
#     some), one shared password; logins are HS256 JWTs (no argon2 per login; the cluster's
#     [[auth.jwt]] issuer from cluster.sh, the same secret for the single nodes); homes seeded
#     with 2 files of 16 KiB each (shared content).
#   exam-peak: UPLOADS [3000] pupils (issue 4: 100,000) in an EXAM_WINDOW_S [120] s window
#     (issue 4: 1800 s), 80 % in the last 60 s; sizes log-normal, median 60 KB; every
#     acknowledged upload read back (through another node first in cluster mode).
#   login-storm: SESSIONS [20000] sessions (issue 4: 1,000,000) over STORM_WINDOW_S [600]
#     scenario seconds (issue 4: 3600), each polling every 60 s for STORM_SESSION_S [300]
#     (issue 4: 600), run STORM_SCALE [10] times faster than real time.
#   fail-over: FAILOVER [1]; node KILL_NODE [2] gets SIGKILL KILL_AT_S [2/3 of the window: 80]
#     wall seconds after the exam run starts (in its last-minute peak); recovery is polled every 0.2 s for at most
#     RECOVERY_TIMEOUT_S [60]: every surviving node's /readyz, every cell served by a survivor
#     (their /_skab/cluster/state), and an authenticated PROPFIND Depth 0 of one home per tenant
#     through a surviving node (tenants alternate between them). Recovered: the first round in
#     which all of them answer (200 / 207), timed from the kill.
#   MODES ["local object cluster"] which setups run (empty: only the fail-over);
#   OUT [CLUSTER_DIR/bench-<unix time>] result.json and report.html of every run;
#   PORT [node 1's port + 100] and PORT+1: the single nodes; LT_BIN, SKAB_BIN: default the
#   release builds when present, else debug.
set -euo pipefail

# skab reads every SKAB_<KEY> environment variable as a setting and refuses unknown ones:
# this script's own SKAB_* knobs stay shell variables, never reach a skab process.
for v in SKAB_BIN SKAB_NODES SKAB_CELLS SKAB_LEASE_TTL_S SKAB_FORWARD SKAB_NODE_EXTRA \
  SKAB_TOOLS_DIR SKAB_CONFIG SKAB_NODE_CONFIGS; do
  export -n "$v" 2>/dev/null || true
done

log() { echo "[bench $(date -u +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }

[ $# -eq 1 ] || die "usage: $0 CLUSTER_DIR (a running scripts/cluster.sh up CLUSTER_DIR)"
CL="$(cd "$1" && pwd)" || die "no directory $1"
[ -e "$CL/cluster.env" ] || die "$CL/cluster.env missing: run scripts/cluster.sh up $CL first"
# shellcheck disable=SC1091
. "$CL/cluster.env"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

pick_bin() {
  local r="$REPO/target/release/$1" d="$REPO/target/debug/$1"
  if [ -x "$r" ]; then
    [ -x "$d" ] && [ "$r" -ot "$d" ] && log "warning: $r is older than $d (a stale release build?)"
    echo "$r"
  else
    echo "$d"
  fi
}
LT="${LT_BIN:-$(pick_bin skab-loadtest)}"
SKAB="${SKAB_BIN:-$(pick_bin skab)}"
[ -x "$LT" ] || die "no skab-loadtest at $LT (cargo build --release -p skab-loadtest)"
[ -x "$SKAB" ] || die "no skab at $SKAB (cargo build --release -p skab-server)"

USERS="${USERS:-2000}" TENANTS="${TENANTS:-36}"
UPLOADS="${UPLOADS:-3000}" EXAM_WINDOW_S="${EXAM_WINDOW_S:-120}"
SESSIONS="${SESSIONS:-20000}" STORM_WINDOW_S="${STORM_WINDOW_S:-600}"
STORM_SESSION_S="${STORM_SESSION_S:-300}" STORM_SCALE="${STORM_SCALE:-10}"
FAILOVER="${FAILOVER:-1}" KILL_NODE="${KILL_NODE:-2}"
KILL_AT_S="${KILL_AT_S:-$(( EXAM_WINDOW_S * 2 / 3 ))}"
RECOVERY_TIMEOUT_S="${RECOVERY_TIMEOUT_S:-60}"
MODES="${MODES-local object cluster}"
OUT="${OUT:-$CL/bench-$(date +%s)}"
if [[ " $MODES " == *" cluster "* ]] || [ "$FAILOVER" = 1 ]; then
  [ -n "${NODES:-}" ] ||
    die "$CL has no skab nodes (started with SKAB_NODES=0): only MODES=\"local object\" FAILOVER=0 can run"
  read -r -a NODE_URLS <<<"$NODES"
  read -r -a NODE_PID_LIST <<<"$NODE_PIDS"
  [ "$KILL_NODE" -ge 1 ] && [ "$KILL_NODE" -le "${#NODE_URLS[@]}" ] ||
    die "KILL_NODE must be 1..${#NODE_URLS[@]}"
  PORT="${PORT:-$(( ${NODE_URLS[0]##*:} + 100 ))}"
fi
PORT="${PORT:-$(( BASE_PORT + 201 ))}"
# A cluster without skab nodes has no JWT issuer of its own: the single nodes get one here.
JWT_SECRET="${JWT_SECRET:-$(openssl rand -hex 32)}"

mkdir -p "$OUT"
W="$OUT/work"
mkdir -p "$W"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT

# The population: users.csv for the generator, import.csv (one argon2 hash) for skab.
"$LT" users --count "$USERS" --tenant school --tenants "$TENANTS" --out "$W/users.csv" \
  --skab-import "$W/import.csv" 2>>"$W/bench.log"
JWT_TOML="[[auth.jwt]]
issuer = \"skab-loadtest\"
audience = \"skab\"
algorithm = \"HS256\"
secret = \"$JWT_SECRET\""
cat >"$W/lt.toml" <<EOT
[auth]
jwt_secret = "$JWT_SECRET"
jwt_share = 1.0
token_share = 0.0
basic_share = 0.0

[seed]
files_per_user = 2
file_size_bytes = 16384
shared_content = true

[login_storm]
session_s = $STORM_SESSION_S
poll_every_s = 60
EOT

# Starts a single node ($1: local or object) on $2; prints its pid.
start_single() {
  local mode="$1" port="$2" d="$W/$1"
  {
    echo "data_dir = \"$d/data\""
    echo "listen = \"127.0.0.1:$port\""
    echo "$JWT_TOML"
    if [ "$mode" = object ]; then
      local eps="" e
      for e in $S3_ENDPOINTS; do eps="$eps${eps:+, }\"$e\""; done
      cat <<EOT

[storage.object]
endpoints = [$eps]
region = "$S3_REGION"
bucket = "$S3_BUCKET"
access_key = "$S3_ACCESS_KEY"
secret_key_file = "$S3_SECRET_KEY_FILE"
prefix = "bench-$(basename "$OUT")/"
EOT
    fi
  } >"$d.toml"
  "$SKAB" user import --data-dir "$d/data" --csv "$W/import.csv" >>"$W/bench.log" 2>&1 ||
    die "user import into the $mode node failed; see $W/bench.log"
  "$SKAB" serve --config "$d.toml" >"$d.log" 2>&1 </dev/null &
  local pid="$!"
  for _ in $(seq 150); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && { echo "$pid"; return; }
    kill -0 "$pid" 2>/dev/null || die "the $mode node exited at start; see $d.log"
    sleep 0.2
  done
  kill -9 "$pid"
  die "the $mode node did not answer /healthz in 30 s; see $d.log"
}

# Runs the generator: $1 name (directory under OUT), $2 targets (comma-separated), $3 server
# pid or "", then the rest of the arguments. A failed threshold (exit 3) is reported, not fatal.
lt_run() {
  local name="$1" targets="$2" pid="$3"; shift 3
  local extra=()
  [ -n "$pid" ] && extra=(--server-pid "$pid")
  log "$name: skab-loadtest $*"
  local rc=0
  "$LT" "$@" --target "$targets" --users "$W/users.csv" --config "$W/lt.toml" \
    --out "$OUT/$name" --quiet "${extra[@]}" >"$OUT/$name.log" 2>&1 || rc=$?
  [ "$rc" = 0 ] || [ "$rc" = 3 ] || die "$name: skab-loadtest failed (exit $rc); see $OUT/$name.log"
  [ "$rc" = 0 ] || log "$name: a threshold failed or data was damaged (exit 3); see $OUT/$name.log"
}

# Cluster runs follow 307s: a cluster with forward = "redirect" sends clients to the owner.
exam() {
  lt_run "$1-exam" "$2" "$3" run exam-peak --sessions "$UPLOADS" --duration "$EXAM_WINDOW_S" \
    --follow-redirects
}
storm() {
  lt_run "$1-storm" "$2" "$3" run login-storm --sessions "$SESSIONS" --duration "$STORM_WINDOW_S" \
    --time-scale "$STORM_SCALE" --follow-redirects
}

CLUSTER_TARGETS="$(IFS=,; echo "${NODE_URLS[*]:-}")"
cluster_ready=0
prepare_cluster() {
  [ "$cluster_ready" = 1 ] && return
  # `skab user import` is refused with a cluster config (the CSV would be read on a node):
  # one `user add` per user, 4 at a time; a user left by an earlier run is kept; a cell
  # that is moving ("try again") is waited for.
  log "cluster: adding $USERS users through $SKAB_CONFIG"
  python3 - "$SKAB" "$SKAB_CONFIG" "$W/users.csv" <<'PY' 2>>"$W/bench.log" ||
import csv, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
skab, cfg, users = sys.argv[1:4]
def add(r):
    # A cell moving between nodes answers "try again": wait and do (at most 30 times).
    for _ in range(30):
        p = subprocess.run([skab, "user", "add", "--config", cfg, "--tenant", r["tenant"],
                            "--user", r["user"], "--password-stdin"],
                           input=r["password"] + "\n", capture_output=True, text=True)
        if p.returncode == 0 or "user exists" in p.stderr:
            return ""
        if "try again" not in p.stderr:
            break
        time.sleep(1)
    return p.stderr.strip()
with ThreadPoolExecutor(4) as ex:
    bad = [e for e in ex.map(add, csv.DictReader(open(users))) if e]
for e in bad[:5]:
    print(e, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
    die "skab user add --config $SKAB_CONFIG failed; see $W/bench.log"
  lt_run cluster-seed "$CLUSTER_TARGETS" "" seed --follow-redirects
  cluster_ready=1
}

port="$PORT"
for mode in $MODES; do
  case "$mode" in
    local | object)
      pid="$(start_single "$mode" "$port")" || exit 1
      pids+=("$pid")
      url="http://127.0.0.1:$port"
      lt_run "$mode-seed" "$url" "$pid" seed
      exam "$mode" "$url" "$pid"
      storm "$mode" "$url" "$pid"
      kill "$pid"
      port=$(( port + 1 ))
      ;;
    cluster)
      prepare_cluster
      exam cluster "$CLUSTER_TARGETS" ""
      storm cluster "$CLUSTER_TARGETS" ""
      ;;
    *) die "unknown mode $mode in MODES: local, object or cluster" ;;
  esac
done

# Fail-over: SIGKILL one node during the exam peak against the cluster.
if [ "$FAILOVER" = 1 ]; then
  prepare_cluster
  victim="${NODE_PID_LIST[$((KILL_NODE - 1))]}"
  kill -0 "$victim" 2>/dev/null || die "node $KILL_NODE (pid $victim) is not running"
  survivors=()
  for i in "${!NODE_URLS[@]}"; do [ "$i" = $((KILL_NODE - 1)) ] || survivors+=("${NODE_URLS[$i]}"); done
  log "failover: exam-peak against the cluster; node $KILL_NODE (pid $victim) gets SIGKILL at ${KILL_AT_S}s"
  started="$(date +%s.%N)"
  lt_run failover-exam "$CLUSTER_TARGETS" "" run exam-peak --sessions "$UPLOADS" \
    --duration "$EXAM_WINDOW_S" --threshold lost=0 --follow-redirects &
  exam_job="$!"
  sleep "$KILL_AT_S"
  kill -9 "$victim"
  killed="$(date +%s.%N)"
  log "failover: node $KILL_NODE killed $(awk "BEGIN { printf \"%.1f\", $killed - $started }") s into the run; polling recovery"
  python3 - "$killed" "$RECOVERY_TIMEOUT_S" "$JWT_SECRET" "$W/users.csv" "$OUT/failover-recovery.json" \
    "${survivors[@]}" <<'PY' || log "failover: recovery poller failed"
import base64, hashlib, hmac, http.client, json, sys, time, urllib.parse
killed, timeout, secret, users_csv, out = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
nodes = [urllib.parse.urlsplit(u) for u in sys.argv[6:]]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def jwt(login):
    now = int(time.time())
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"iss": "skab-loadtest", "aud": "skab", "iat": now, "exp": now + 3600,
                           "preferred_username": login}).encode())
    sig = b64(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"
homes = {}
with open(users_csv) as f:
    next(f)
    for line in f:
        user, tenant = line.strip().split(",")[:2]
        homes.setdefault(tenant, (f"/dav/{tenant}/{user}/", jwt(f"{user}@{tenant}")))
def get(node, method, path, headers):
    """(status, body); a 307/308 (forward = "redirect") is followed, at most 3 hops."""
    host, port = node.hostname, node.port
    for _ in range(4):
        try:
            c = http.client.HTTPConnection(host, port, timeout=2)
            c.request(method, path, headers=headers)
            r = c.getresponse(); body = r.read(); c.close()
        except Exception:
            return 0, b""
        loc = r.getheader("Location")
        if r.status not in (307, 308) or not loc:
            return r.status, body
        to = urllib.parse.urlsplit(loc)
        host, port = to.hostname or host, to.port or port
        path = to.path + (f"?{to.query}" if to.query else "")
    return r.status, body
def status(node, method, path, headers):
    return get(node, method, path, headers)[0]
def serving(node):
    """(cells, the cells this node serves) from its /_skab/cluster/state."""
    st, body = get(node, "GET", "/_skab/cluster/state", {})
    try:
        cells = json.loads(body)["cells"] if st == 200 else []
    except ValueError:
        cells = []
    return len(cells), {c["cell"] for c in cells if c.get("here") == "serving"}
rounds, recovered, cells_served, failing, relapses = 0, None, None, [], 0
while True:
    rounds += 1
    failing = []
    total, served = 0, set()
    for n in nodes:
        if status(n, "GET", "/readyz", {}) != 200:
            failing.append(f"readyz {n.netloc}")
        t, here = serving(n)
        total, served = max(total, t), served | here
    if total == 0 or len(served) < total:
        failing.append(f"cells not served: {sorted(set(range(total)) - served)}")
    if not failing and cells_served is None:
        cells_served = time.time() - killed
    for k, (tenant, (home, token)) in enumerate(sorted(homes.items())):
        n = nodes[k % len(nodes)]
        if status(n, "PROPFIND", home, {"Authorization": f"Bearer {token}", "Depth": "0"}) != 207:
            failing.append(f"{tenant} via {n.netloc}")
    now = time.time()
    if not failing and recovered is None:
        recovered = now - killed
        until = now + 3.0
    elif failing and recovered is not None:
        relapses += 1
    if recovered is not None and now >= until:
        break
    if recovered is None and now - killed > timeout:
        break
    time.sleep(0.2)
res = {"recovered_s": recovered, "cells_served_s": cells_served, "rounds": rounds, "tenants": len(homes),
       "relapses_in_3s_after": relapses, "still_failing": failing[:20]}
json.dump(res, open(out, "w"), indent=1)
print(json.dumps(res))
PY
  wait "$exam_job" || true
  log "failover: restarting node $KILL_NODE"
  bash "$REPO/scripts/cluster.sh" restart-node "$CL" "$KILL_NODE" ||
    log "failover: node $KILL_NODE did not come back; see $CL/node$KILL_NODE/skab.log"
fi

# The table.
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
def load(name):
    p = os.path.join(out, name, "result.json")
    return json.load(open(p)) if os.path.exists(p) else None
def ms(us): return f"{us / 1000:.1f}"
rows = [("setup", "scenario", "requests", "errors", "req/s", "op", "op p50 ms", "op p99 ms",
         "notes")]
for mode in ("local", "object", "cluster", "failover"):
    for sc, op in (("exam", "upload"), ("storm", "login.jwt")):
        r = load(f"{mode}-{sc}")
        if not r:
            continue
        o = r.get("ops", {}).get(op, {}).get("latency_us", {})
        notes = ""
        e = r.get("exam")
        if e:
            notes = (f"acked {e['acknowledged']} of {e['pupils_planned']}, verified {e['verified']}, "
                     f"lost {e['lost']}, corrupted {e['corrupted']}, "
                     f"{e['uploads_per_s']:.0f} uploads/s")
            if e.get("verify_targets", 1) > 1:
                notes += f", verified via another node {e['verified_elsewhere']}"
        ls = r.get("login_storm")
        if ls:
            notes = f"logins ok {ls.get('logins_ok')} of {r['sessions']['started']}"
        if r.get("server"):
            notes += f"; server {r['server']['cpu_cores_busy']:.2f} cores"
        rows.append((mode, r["scenario"], str(r["requests"]["total"]), str(r["requests"]["errors"]),
                     f"{r['requests']['per_s']:.0f}", op, ms(o.get("p50", 0)), ms(o.get("p99", 0)),
                     notes))
w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
for r in rows:
    print("  ".join(c.ljust(w[i]) for i, c in enumerate(r[:-1])) + "  " + r[-1])
p = os.path.join(out, "failover-recovery.json")
if os.path.exists(p):
    f = json.load(open(p))
    rec = f["recovered_s"]
    print(f"\nfail-over: every cell answered again {rec:.1f} s after the SIGKILL" if rec is not None
          else f"\nfail-over: NOT recovered within the timeout; still failing: {f['still_failing']}")
    cs = f.get("cells_served_s")
    print("  every node ready and every cell served by a survivor after "
          + (f"{cs:.1f} s" if cs is not None else "never (within the timeout)"))
    print(f"  ({f['tenants']} tenants checked per round, {f['rounds']} rounds, "
          f"{f['relapses_in_3s_after']} failing rounds in the 3 s after recovery)")
    r = load("failover-exam")
    if r and r.get("exam"):
        e = r["exam"]
        print(f"  exam during the fail-over: {e['acknowledged']} acknowledged, {e['lost']} lost, "
              f"{e['corrupted']} corrupted, {e['verify_errors']} unreadable, "
              f"{e['upload_failed']} uploads not acknowledged (per node {e['failed_by_target']})")
        ok = (rec is not None and rec < 10 and e["lost"] == 0 and e["corrupted"] == 0
              and e["verify_errors"] == 0)
        print(f"  verdict (issue 17: under 10 s, every acknowledged upload readable): "
              f"{'PASS' if ok else 'FAIL'}")
print(f"\nresults: {out}")
PY
