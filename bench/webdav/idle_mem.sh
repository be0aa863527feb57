#!/usr/bin/env bash
# Memory per idle keep-alive connection, plain HTTP and TLS, skab beside nginx in one run: for each
# server and kind, a fresh server (ECDSA P-256 test certificate for TLS), then idle_conns.py opens N
# connections, sends one PROPFIND Depth 0 of a small file on each, reads the answers and reports the
# growth of the server's resident memory per connection while they sit idle.
#
# Knobs (environment): N (19000; the per-process descriptor limit here is 20,000), SERVERS
# ("skab nginx"; "skab-base" is a second skab binary, BASE_SKAB_BIN, e.g. the build before a
# change), KINDS ("plain tls"), SKAB_BIN (target/release/skab), BASE_PORT (28480), WORKERS (unset:
# each server's default; N: skab `workers`, nginx `worker_processes`), MAX_BYTES and MAX_BYTES_TLS
# (unset; a number: exit 1 when skab's plain or TLS figure is above it: the regression check,
# `MAX_BYTES=4096 MAX_BYTES_TLS=16384 bench/webdav/idle_mem.sh`; keep N at 10,000 or more, below
# that allocator purges and huge pages make the figure swing by a few KB either way).
# Loopback only; stops what it started and removes its scratch directory.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
N="${N:-19000}"
SERVERS="${SERVERS:-skab nginx}"
KINDS="${KINDS:-plain tls}"
SKAB_BIN="${SKAB_BIN:-$REPO/target/release/skab}"
BASE_PORT="${BASE_PORT:-28480}"
PASS="bench-password-1"
WORK="$(mktemp -d /var/tmp/idlemem.XXXXXX)"
chmod 755 "$WORK"
SRV_PID=""
FAILED=0

log() { echo "[idle_mem] $*" >&2; }
stop_server() {
  if [ -n "$SRV_PID" ]; then
    kill -TERM "$SRV_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
    SRV_PID=""
  fi
}
cleanup() {
  local rc=$?
  stop_server
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT INT TERM

ulimit -n 20000
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
chmod 644 "$WORK/key.pem"

wait_port() { # $1 port
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  log "server did not listen on $1"
  return 1
}

# Starts a server; sets SRV_PID, PATH_, AUTH, SCHEME.
start() { # $1 server, $2 kind, $3 port
  local srv="$1" kind="$2" port="$3" dir="$WORK/$1-$2"
  mkdir -p "$dir"
  SCHEME=http
  [ "$kind" = tls ] && SCHEME=https
  case "$srv" in
    skab | skab-base)
      local bin="$SKAB_BIN"
      [ "$srv" = skab-base ] && bin="${BASE_SKAB_BIN:?BASE_SKAB_BIN names the second skab binary}"
      echo "$PASS" | env -u SKAB_BIN "$bin" user add --data-dir "$dir/data" --tenant bench --user u --password-stdin >/dev/null
      local tls=()
      [ "$kind" = tls ] && tls=(SKAB_TLS_CERT="$WORK/cert.pem" SKAB_TLS_KEY="$WORK/key.pem")
      env -u SKAB_BIN "${tls[@]}" SKAB_LOG_LEVEL=warn SKAB_WORKERS="${WORKERS:-0}" \
        SKAB_LIMITS_CONNECTIONS_MAX=$((N + 500)) \
        "$bin" serve --data-dir "$dir/data" --listen "127.0.0.1:$port" >"$dir/stdout.log" 2>&1 &
      SRV_PID=$!
      PATH_=/dav/bench/u/f.txt
      AUTH="u@bench:$PASS"
      wait_port "$port"
      curl -sfk -u "$AUTH" -T /etc/hostname "$SCHEME://127.0.0.1:$port$PATH_" >/dev/null
      ;;
    nginx)
      mkdir -p "$dir/root" "$dir/tmp"
      cp /etc/hostname "$dir/root/f.txt"
      chown -R www-data:www-data "$dir"
      local listen="listen 127.0.0.1:$port;"
      [ "$kind" = tls ] && listen="listen 127.0.0.1:$port ssl; ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;"
      cat >"$dir/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_http_dav_ext_module.so;
user www-data;
worker_processes ${WORKERS:-auto};
worker_rlimit_nofile 20000;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections $((N + 500)); }
http {
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_temp_path $dir/tmp;
    server {
        $listen
        root $dir/root;
        location / { dav_ext_methods PROPFIND OPTIONS; }
    }
}
EOF
      nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' >"$dir/stdout.log" 2>&1 &
      SRV_PID=$!
      PATH_=/f.txt
      AUTH=""
      wait_port "$port"
      ;;
    *) log "unknown server $srv"; exit 2 ;;
  esac
}

port=$BASE_PORT
for srv in $SERVERS; do
  for kind in $KINDS; do
    start "$srv" "$kind" "$port"
    tls=()
    [ "$kind" = tls ] && tls=(--tls)
    limit=()
    max="${MAX_BYTES:-}"
    [ "$kind" = tls ] && max="${MAX_BYTES_TLS:-}"
    if [ -n "$max" ] && [[ "$srv" == skab ]]; then limit=(--max-bytes "$max"); fi
    python3 "$HERE/idle_conns.py" --port "$port" --pid "$SRV_PID" --n "$N" --path "$PATH_" \
      --auth "$AUTH" --label "$srv" "${tls[@]}" "${limit[@]}" || FAILED=1
    stop_server
    port=$((port + 1))
  done
done
exit $FAILED
