#!/usr/bin/env bash
# The distributed engines Skab's cluster mode stands on, on loopback only (issue 17,
# docs/scaleout.md): a 3-node Garage cluster (replication factor 3) with one bucket and one
# access key, and etcd (1 member).
#
#   scripts/cluster.sh up DIR     start everything under DIR, write DIR/cluster.env
#   scripts/cluster.sh down DIR   stop exactly the processes that `up DIR` started
#   scripts/cluster.sh install    only install what `up` needs (scripts/test.sh calls it)
#
# DIR/cluster.env (shell syntax): GARAGE_PIDS, ETCD_PIDS, S3_ENDPOINTS (the three nodes' S3
# URLs), S3_REGION, S3_BUCKET, S3_ACCESS_KEY, S3_SECRET_KEY, ETCD_ENDPOINTS, GARAGE_BIN (to
# restart a node: "$GARAGE_BIN" -c DIR/garageN/garage.toml server).
# Skab nodes (NODES, NODE_PIDS, SKAB_CONFIG) are added here when cluster mode lands.
#
# Installs etcd (Debian's etcd-server) and Garage (`cargo install garage --locked`, about 7
# minutes on 2 cores, cached in $SKAB_TOOLS_DIR, default ~/.cache/skab-tools) when missing.
# Ports: BASE_PORT (default 27100, below the ephemeral range) and the next 20.
set -euo pipefail

TOOLS="${SKAB_TOOLS_DIR:-$HOME/.cache/skab-tools}"
GARAGE_VERSION="${GARAGE_VERSION:-2.5.0}"
BASE_PORT="${BASE_PORT:-27100}"
GARAGE_NODES=3
START_TIMEOUT_S=60

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

# On a failed `up`: stops what it started.
undo_up() {
  [ -e "$DIR/pids.env" ] && down
}

up() {
  [ -e "$DIR/cluster.env" ] && die "$DIR/cluster.env exists: run '$0 down $DIR' first"
  [ -e "$DIR/garage1" ] && die "$DIR holds an earlier cluster: use a fresh DIR"
  install_tools
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

  local endpoints=()
  for i in $(seq 1 "$GARAGE_NODES"); do endpoints+=("http://127.0.0.1:$(( BASE_PORT + 10 + i ))"); done
  {
    cat "$DIR/pids.env"
    echo "S3_ENDPOINTS=\"${endpoints[*]}\""
    echo "S3_REGION=garage"
    echo "S3_BUCKET=skab"
    echo "S3_ACCESS_KEY=$key_id"
    echo "S3_SECRET_KEY=$key_secret"
    echo "ETCD_ENDPOINTS=\"http://127.0.0.1:$eclient\""
    echo "GARAGE_BIN=\"$GARAGE\""
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
  local all=(${GARAGE_PIDS:-} ${ETCD_PIDS:-})
  kill "${all[@]}" 2>/dev/null || true
  local until=$(( $(date +%s) + 10 ))
  for p in "${all[@]}"; do
    while kill -0 "$p" 2>/dev/null && [ "$(date +%s)" -lt "$until" ]; do sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  rm -f "$DIR/cluster.env" "$DIR/pids.env"
  log "down: stopped ${all[*]}"
}

if [ "${1:-}" = install ] && [ $# -eq 1 ]; then install_tools; exit 0; fi
[ $# -eq 2 ] || die "usage: $0 up|down DIR, or $0 install"
DIR="$(mkdir -p "$2" && cd "$2" && pwd)"
case "$1" in
  up) up ;;
  down) down ;;
  *) die "usage: $0 up|down DIR" ;;
esac
