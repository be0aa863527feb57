#!/usr/bin/env bash
# Skab's cluster mode on loopback only (issue 17, docs/scaleout.md): a 3-node Garage cluster
# (replication factor 3) with one bucket and one access key, etcd (1 member), and 3 `skab`
# nodes over them.
#
#   scripts/cluster.sh up DIR              start everything under DIR, write DIR/cluster.env
#   scripts/cluster.sh down DIR            stop exactly the processes that `up DIR` started
#                                          (and nodes that restart-node started since)
#   scripts/cluster.sh restart-node DIR N  start skab node N (1..3) again with its config (after
#                                          it was killed); waits for its /readyz
#   scripts/cluster.sh install             only install what `up` needs (scripts/test.sh calls it)
#
# DIR/cluster.env (shell syntax): GARAGE_PIDS, ETCD_PIDS, S3_ENDPOINTS (the three Garage nodes'
# S3 URLs), S3_REGION, S3_BUCKET, S3_ACCESS_KEY, S3_SECRET_KEY, S3_SECRET_KEY_FILE,
# ETCD_ENDPOINTS, GARAGE_BIN (to restart a Garage node: "$GARAGE_BIN" -c DIR/garageN/garage.toml
# server); and for the skab nodes: NODES (their base URLs, space-separated, node 1 first),
# NODE_PIDS (same order), SKAB_BIN, SKAB_CONFIG (DIR/admin.toml: the cluster settings without
# node_id, listen and advertise_url, data_dir DIR/admin; for `skab ... --config "$SKAB_CONFIG"`
# admin commands that act on the cluster), SKAB_NODE_CONFIGS (DIR/nodeN/skab.toml, same order),
# CLUSTER_SECRET (the [cluster] secret), JWT_SECRET (below), BASE_PORT.
# Node N: config DIR/nodeN/skab.toml, data DIR/nodeN/data, log DIR/nodeN/skab.log, listening
# on 127.0.0.1:BASE_PORT+100+N. `up` waits (NODE_READY_TIMEOUT_S, default 60) until every
# node answers `GET /readyz` 200 (it holds its etcd lease and its cells are open).
#
# Environment: BASE_PORT (default 27100, below the ephemeral range; Garage and etcd use the
# next 20, the nodes BASE_PORT+101..103); SKAB_NODES=0 starts only Garage and etcd (no skab
# nodes, no NODES/NODE_PIDS/SKAB_CONFIG); SKAB_BIN (default target/release/skab when present,
# else target/debug/skab); SKAB_CELLS (12), SKAB_LEASE_TTL_S (3), SKAB_FORWARD (proxy or
# redirect); SKAB_NODE_EXTRA: TOML tables (each with its [header]) added to every node's and
# the admin config.
# Every config has one HS256 [[auth.jwt]] issuer for the load generator (issuer
# "skab-loadtest", audience "skab", secret JWT_SECRET in cluster.env: skab-loadtest's [auth]
# defaults), so load runs need no argon2 per login.
#
# Installs etcd (Debian's etcd-server) and Garage (`cargo install garage --locked`, about 7
# minutes on 2 cores, cached in $SKAB_TOOLS_DIR, default ~/.cache/skab-tools) when missing.
set -euo pipefail

# skab reads every SKAB_<KEY> environment variable as a setting and refuses unknown ones:
# this script's own SKAB_* knobs stay shell variables, never reach a skab process.
for v in SKAB_BIN SKAB_NODES SKAB_CELLS SKAB_LEASE_TTL_S SKAB_FORWARD SKAB_NODE_EXTRA \
  SKAB_TOOLS_DIR SKAB_CONFIG SKAB_NODE_CONFIGS; do
  export -n "$v" 2>/dev/null || true
done
TOOLS="${SKAB_TOOLS_DIR:-$HOME/.cache/skab-tools}"
GARAGE_VERSION="${GARAGE_VERSION:-2.5.0}"
BASE_PORT="${BASE_PORT:-27100}"
GARAGE_NODES=3
START_TIMEOUT_S=60
SKAB_NODES="${SKAB_NODES:-3}"
NODE_READY_TIMEOUT_S="${NODE_READY_TIMEOUT_S:-60}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { echo "[cluster $(date -u +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }

install_tools() {
  if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then
    log "installing etcd (etcd-server, etcd-client)"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq etcd-server etcd-client >/dev/null
  fi
  GARAGE="$TOOLS/bin/garage"
  if [ ! -x "$GARAGE" ] || ! "$GARAGE" --version 2>/dev/null | grep -q "$GARAGE_VERSION"; then
    log "building garage $GARAGE_VERSION into $TOOLS (once; about 7 minutes)"
    mkdir -p "$TOOLS"
    CARGO_TARGET_DIR="$TOOLS/garage-target" cargo install garage --version "$GARAGE_VERSION" \
      --locked --root "$TOOLS" >"$TOOLS/garage-build.log" 2>&1 ||
      die "garage did not build; see $TOOLS/garage-build.log"
    rm -rf "$TOOLS/garage-target"
  fi
}

# Waits until "$@" succeeds, at most START_TIMEOUT_S.
wait_for() {
  local what="$1"; shift
  local until=$(( $(date +%s) + START_TIMEOUT_S ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$until" ] || die "$what did not come up in ${START_TIMEOUT_S}s"
    sleep 0.2
  done
}

garage_cfg() { echo "$DIR/garage$1/garage.toml"; }

# The skab binary: $SKAB_BIN, else the release build when present, else the debug build.
skab_bin() {
  local b="${SKAB_BIN:-}"
  if [ -z "$b" ]; then
    local r="$REPO/target/release/skab" d="$REPO/target/debug/skab"
    if [ -x "$r" ]; then
      b="$r"
      [ -x "$d" ] && [ "$r" -ot "$d" ] && log "warning: $r is older than $d (a stale release build?)"
    else
      b="$d"
    fi
  fi
  [ -x "$b" ] || die "no skab binary at $b (cargo build -p skab-server, or set SKAB_BIN)"
  (cd "$(dirname "$b")" && echo "$(pwd)/$(basename "$b")")
}

node_port() { echo $(( BASE_PORT + 100 + $1 )); }
node_url() { echo "http://127.0.0.1:$(node_port "$1")"; }

# The settings every node and the admin config share (storage, cluster), as TOML lines.
# Args: S3 endpoints (TOML list body), key id, etcd URL, cluster secret.
shared_toml() {
  cat <<EOT
[storage.object]
endpoints = [$1]
region = "garage"
bucket = "skab"
access_key = "$2"
secret_key_file = "$DIR/s3-secret"
prefix = "skab/"

[cluster]
etcd = ["$3"]
cells = ${SKAB_CELLS:-12}
lease_ttl_s = ${SKAB_LEASE_TTL_S:-3}
secret = "$4"
forward = "${SKAB_FORWARD:-proxy}"
EOT
}

# Writes DIR/nodeN/skab.toml and DIR/admin.toml.
write_skab_configs() {
  local eps="$1" key_id="$2" etcd_url="$3" secret="$4" jwt="$5" shared
  shared="$(shared_toml "$eps" "$key_id" "$etcd_url" "$secret")
$(printf '%s\n' "${SKAB_NODE_EXTRA:-}")

[[auth.jwt]]
issuer = \"skab-loadtest\"
audience = \"skab\"
algorithm = \"HS256\"
secret = \"$jwt\""
  for i in $(seq 1 "$SKAB_NODES"); do
    local d="$DIR/node$i"
    mkdir -p "$d"
    {
      echo "data_dir = \"$d/data\""
      echo "listen = \"127.0.0.1:$(node_port "$i")\""
      # node_id and advertise_url go into [cluster], right after its header.
      echo "$shared" | sed "s|^\\[cluster\\]\$|[cluster]\\nnode_id = \"node$i\"\\nadvertise_url = \"$(node_url "$i")\"|"
    } >"$d/skab.toml"
    chmod 600 "$d/skab.toml"
  done
  {
    echo "data_dir = \"$DIR/admin\""
    echo "$shared"
  } >"$DIR/admin.toml"
  chmod 600 "$DIR/admin.toml"
}

# Starts node $1 in the background; prints its pid.
start_node() {
  local d="$DIR/node$1"
  "$SKAB" serve --config "$d/skab.toml" >>"$d/skab.log" 2>&1 </dev/null &
  echo "$!"
}

# Waits until node $1 (pid $2) answers /readyz 200; dies when it exits or times out.
wait_ready() {
  local until=$(( $(date +%s) + NODE_READY_TIMEOUT_S ))
  until curl -sf -o /dev/null --max-time 2 "$(node_url "$1")/readyz"; do
    kill -0 "$2" 2>/dev/null || die "skab node $1 exited at start; see $DIR/node$1/skab.log"
    [ "$(date +%s)" -lt "$until" ] ||
      die "skab node $1 was not ready in ${NODE_READY_TIMEOUT_S}s; see $DIR/node$1/skab.log"
    sleep 0.2
  done
}

# Rewrites KEY="VALUE" in pids.env and (when present) cluster.env.
set_var() {
  local f
  for f in "$DIR/pids.env" "$DIR/cluster.env"; do
    [ -e "$f" ] || continue
    grep -v "^$1=" "$f" >"$f.tmp" || true
    echo "$1=\"$2\"" >>"$f.tmp"
    chmod 600 "$f.tmp"
    mv "$f.tmp" "$f"
  done
}

# On a failed `up`: stops what it started.
undo_up() {
  [ -e "$DIR/pids.env" ] && down
}

up() {
  [ -e "$DIR/cluster.env" ] && die "$DIR/cluster.env exists: run '$0 down $DIR' first"
  [ -e "$DIR/garage1" ] && die "$DIR holds an earlier cluster: use a fresh DIR"
  install_tools
  [ "$SKAB_NODES" = 0 ] || [ "$SKAB_NODES" = 3 ] || die "SKAB_NODES must be 0 or 3"
  if [ "$SKAB_NODES" != 0 ]; then SKAB="$(skab_bin)"; fi
  mkdir -p "$DIR"
  trap undo_up EXIT
  local secret; secret="$(openssl rand -hex 32)"
  local pids=()
  for i in $(seq 1 "$GARAGE_NODES"); do
    local d="$DIR/garage$i" rpc=$(( BASE_PORT + i )) s3=$(( BASE_PORT + 10 + i ))
    mkdir -p "$d/meta" "$d/data"
    cat >"$d/garage.toml" <<EOT
metadata_dir = "$d/meta"
data_dir = "$d/data"
db_engine = "lmdb"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
EOT
    chmod 600 "$d/garage.toml"
    "$GARAGE" -c "$d/garage.toml" server >"$d/garage.log" 2>&1 &
    pids+=("$!")
    echo "GARAGE_PIDS=\"${pids[*]}\"" >"$DIR/pids.env"
  done

  local edir="$DIR/etcd" eclient=$(( BASE_PORT + 20 )) epeer=$(( BASE_PORT + 19 ))
  mkdir -p "$edir"
  etcd --name skab-etcd1 --data-dir "$edir/data" \
    --listen-client-urls "http://127.0.0.1:$eclient" --advertise-client-urls "http://127.0.0.1:$eclient" \
    --listen-peer-urls "http://127.0.0.1:$epeer" --initial-advertise-peer-urls "http://127.0.0.1:$epeer" \
    --initial-cluster "skab-etcd1=http://127.0.0.1:$epeer" >"$edir/etcd.log" 2>&1 &
  echo "ETCD_PIDS=\"$!\"" >>"$DIR/pids.env"
  # A node that cannot bind its ports exits at once.
  sleep 1
  for p in "${pids[@]}"; do
    kill -0 "$p" 2>/dev/null || die "a garage node exited at start (port taken? see $DIR/garage*/garage.log)"
  done

  # Join the nodes, give each a role, apply the layout.
  local ids=()
  for i in $(seq 1 "$GARAGE_NODES"); do
    wait_for "garage node $i" "$GARAGE" -c "$(garage_cfg "$i")" node id -q
    ids+=("$("$GARAGE" -c "$(garage_cfg "$i")" node id -q)")
  done
  for i in $(seq 2 "$GARAGE_NODES"); do
    "$GARAGE" -c "$(garage_cfg 1)" node connect "${ids[$((i - 1))]}" >/dev/null
  done
  for id in "${ids[@]}"; do
    "$GARAGE" -c "$(garage_cfg 1)" layout assign -z loopback -c 1G "${id%%@*}" >/dev/null
  done
  "$GARAGE" -c "$(garage_cfg 1)" layout apply --version 1 >/dev/null
  wait_for "garage layout" "$GARAGE" -c "$(garage_cfg 1)" bucket create skab
  local key_id="GK$(openssl rand -hex 12)" key_secret; key_secret="$(openssl rand -hex 32)"
  "$GARAGE" -c "$(garage_cfg 1)" key import --yes -n skab "$key_id" "$key_secret" >/dev/null
  "$GARAGE" -c "$(garage_cfg 1)" bucket allow --read --write --owner skab --key skab >/dev/null
  wait_for "etcd" etcdctl --endpoints "http://127.0.0.1:$eclient" endpoint health

  local endpoints=() eps=""
  for i in $(seq 1 "$GARAGE_NODES"); do
    endpoints+=("http://127.0.0.1:$(( BASE_PORT + 10 + i ))")
    eps="$eps${eps:+, }\"http://127.0.0.1:$(( BASE_PORT + 10 + i ))\""
  done
  ( umask 077; echo "$key_secret" >"$DIR/s3-secret" )

  local node_lines=()
  if [ "$SKAB_NODES" != 0 ]; then
    local csecret jwt; csecret="$(openssl rand -hex 32)"; jwt="$(openssl rand -hex 32)"
    write_skab_configs "$eps" "$key_id" "http://127.0.0.1:$eclient" "$csecret" "$jwt"
    local npids=() urls=() cfgs=()
    for i in $(seq 1 "$SKAB_NODES"); do
      npids+=("$(start_node "$i")")
      urls+=("$(node_url "$i")")
      cfgs+=("$DIR/node$i/skab.toml")
      echo "NODE_PIDS=\"${npids[*]}\"" >>"$DIR/pids.env"
    done
    for i in $(seq 1 "$SKAB_NODES"); do wait_ready "$i" "${npids[$((i - 1))]}"; done
    node_lines=(
      "NODES=\"${urls[*]}\""
      "SKAB_BIN=\"$SKAB\""
      "SKAB_CONFIG=\"$DIR/admin.toml\""
      "SKAB_NODE_CONFIGS=\"${cfgs[*]}\""
      "CLUSTER_SECRET=$csecret"
      "JWT_SECRET=$jwt"
    )
  fi
  {
    # The last NODE_PIDS line of pids.env wins when sourced; keep one.
    grep -v '^NODE_PIDS=' "$DIR/pids.env" || true
    { grep '^NODE_PIDS=' "$DIR/pids.env" || true; } | tail -n 1
    echo "S3_ENDPOINTS=\"${endpoints[*]}\""
    echo "S3_REGION=garage"
    echo "S3_BUCKET=skab"
    echo "S3_ACCESS_KEY=$key_id"
    echo "S3_SECRET_KEY=$key_secret"
    echo "S3_SECRET_KEY_FILE=\"$DIR/s3-secret\""
    echo "ETCD_ENDPOINTS=\"http://127.0.0.1:$eclient\""
    echo "GARAGE_BIN=\"$GARAGE\""
    echo "BASE_PORT=$BASE_PORT"
    for l in "${node_lines[@]}"; do echo "$l"; done
  } >"$DIR/cluster.env.tmp"
  chmod 600 "$DIR/cluster.env.tmp"
  mv "$DIR/cluster.env.tmp" "$DIR/cluster.env"
  trap - EXIT
  log "up: $DIR/cluster.env"
}

down() {
  local env="$DIR/pids.env"
  [ -e "$env" ] || die "nothing started under $DIR (no pids.env)"
  # shellcheck disable=SC1090
  . "$env"
  # The skab nodes first (they hold etcd leases and write to Garage), then the engines.
  stop_pids ${NODE_PIDS:-}
  stop_pids ${GARAGE_PIDS:-} ${ETCD_PIDS:-}
  rm -f "$DIR/cluster.env" "$DIR/pids.env"
  log "down: stopped ${NODE_PIDS:-} ${GARAGE_PIDS:-} ${ETCD_PIDS:-}"
}

# SIGTERM to each pid, then SIGKILL to what is left after 10 s.
stop_pids() {
  [ $# -gt 0 ] || return 0
  kill "$@" 2>/dev/null || true
  local until=$(( $(date +%s) + 10 ))
  for p in "$@"; do
    while kill -0 "$p" 2>/dev/null && [ "$(date +%s)" -lt "$until" ]; do sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
}

# Whether pid $1 runs (a zombie does not).
alive() {
  local st; st="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  st="${st##*) }"
  [ -n "$st" ] && [ "${st%% *}" != Z ]
}

restart_node() {
  local n="$1"
  [ -e "$DIR/cluster.env" ] || die "no running cluster under $DIR (no cluster.env)"
  # shellcheck disable=SC1090
  . "$DIR/cluster.env"
  [ -n "${NODE_PIDS:-}" ] || die "$DIR has no skab nodes (started with SKAB_NODES=0)"
  local pids=($NODE_PIDS)
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le "${#pids[@]}" ] ||
    die "node must be 1..${#pids[@]}, is $n"
  local old="${pids[$((n - 1))]}" until=$(( $(date +%s) + 5 ))
  # A process just killed may take a moment to go (or linger as a zombie until reaped).
  while alive "$old" && [ "$(date +%s)" -lt "$until" ]; do sleep 0.1; done
  alive "$old" && die "node $n (pid $old) still runs: stop it first"
  SKAB="$SKAB_BIN"
  local pid; pid="$(start_node "$n")"
  pids[$((n - 1))]="$pid"
  set_var NODE_PIDS "${pids[*]}"
  wait_ready "$n" "$pid"
  log "node $n restarted: pid $pid"
}

USAGE="usage: $0 up|down DIR, $0 restart-node DIR N, or $0 install"
if [ "${1:-}" = install ] && [ $# -eq 1 ]; then install_tools; exit 0; fi
if [ "${1:-}" = restart-node ] && [ $# -eq 3 ]; then
  DIR="$(cd "$2" && pwd)" || die "no directory $2"
  restart_node "$3"
  exit 0
fi
[ $# -eq 2 ] || die "$USAGE"
DIR="$(mkdir -p "$2" && cd "$2" && pwd)"
case "$1" in
  up) up ;;
  down) down ;;
  *) die "$USAGE" ;;
esac
