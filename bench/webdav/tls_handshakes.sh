#!/usr/bin/env bash
# TLS handshakes per second per core: skab serving TLS itself vs nginx terminating TLS, side by
# side in one run. Both serve a tiny response (skab: GET /healthz; nginx: `return 200`) on a
# new connection per request (HTTP/1.0, closed after the answer), full handshakes (`openssl
# s_time -new`) and resumed ones (`-reuse`, TLS 1.3 session tickets). Each server runs on one
# CPU (taskset; skab `workers = 1`, nginx `worker_processes 1`), the clients (CLIENTS parallel
# `openssl s_time`) on another; the server's CPU seconds over the run give its CPU per
# handshake, which is what "per core" means here (the clients, not the server, may be the
# limit of the rate). Output: one markdown row per server, mode and round.
#
# Knobs (environment): DURATION (8, seconds per run), CLIENTS (4), ROUNDS (2), KEY (ec: ECDSA
# P-256; rsa: RSA 2048), SERVER_CPU (0), CLIENT_CPU (1), SERVERS ("skab nginx"), SKAB_BIN
# (target/release/skab), BUILDS ("name=binary ...": other skab builds, served beside it
# as skab-name), BASE_PORT (29443), WORKERS (1: skab `workers` and nginx
# `worker_processes`), WRK_THREADS (1), WRK_CONNS (unset: no wrk run; N: also wrk with N
# connections and `Connection: close`, for latency percentiles). Needs openssl and nginx (Debian: apt-get install
# nginx-light or nginx).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
DURATION="${DURATION:-8}"
CLIENTS="${CLIENTS:-4}"
ROUNDS="${ROUNDS:-2}"
KEY="${KEY:-ec}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
SERVERS="${SERVERS:-skab nginx}"
SKAB_BIN="${SKAB_BIN:-$REPO/target/release/skab}"
WORKERS="${WORKERS:-1}"
WRK_THREADS="${WRK_THREADS:-1}"
BASE_PORT="${BASE_PORT:-29443}"
WORK="$(mktemp -d /tmp/tlsbench.XXXXXX)"
chmod 755 "$WORK"
CLK_TCK="$(getconf CLK_TCK)"

log() { echo "[tlsbench] $*" >&2; }

PIDS=()
cleanup() {
  local rc=$?
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] || continue
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT INT TERM

# ---- certificates: a CA and a leaf for localhost / 127.0.0.1 signed by it -------------------
case "$KEY" in
  ec) NEWKEY=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
  rsa) NEWKEY=(-newkey rsa:2048) ;;
  *) echo "KEY must be ec or rsa" >&2; exit 2 ;;
esac
cd "$WORK"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext.cnf
openssl req -x509 -nodes -days 2 -subj /CN=bench-ca "${NEWKEY[@]}" -keyout ca.key -out ca.pem 2>/dev/null
openssl req -nodes -subj /CN=localhost "${NEWKEY[@]}" -keyout key.pem -out leaf.csr 2>/dev/null
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
  -extfile ext.cnf -out cert.pem 2>/dev/null

# ---- servers ---------------------------------------------------------------------------------
SKAB_PORT=$BASE_PORT
NGINX_PORT=$((BASE_PORT + 1))
declare -A PORT PATHS PID
start_skab() { # name binary port
  printf 'workers = %s\n[tls]\ncert = "%s/cert.pem"\nkey = "%s/key.pem"\n' "$WORKERS" "$WORK" "$WORK" > "$1.toml"
  env -u SKAB_BIN taskset -c "$SERVER_CPU" "$2" serve --config "$1.toml" --data-dir "$WORK/$1-data" \
    --listen "127.0.0.1:$3" > "$1.log" 2>&1 &
  PID[$1]=$!; PIDS+=("${PID[$1]}")
  PORT[$1]=$3; PATHS[$1]=/healthz
}
if [[ " $SERVERS " == *" skab "* ]]; then
  start_skab skab "$SKAB_BIN" "$SKAB_PORT"
fi
# Other skab builds beside it: BUILDS="name=binary ..." serve as skab-name.
port=$((BASE_PORT + 2))
for v in ${BUILDS:-}; do
  start_skab "skab-${v%%=*}" "${v#*=}" "$port"
  SERVERS="$SERVERS skab-${v%%=*}"
  port=$((port + 1))
done
if [[ " $SERVERS " == *" nginx "* ]]; then
  mkdir -p nginx
  cat > nginx/nginx.conf <<NGX
worker_processes $WORKERS;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets on;
    server {
        listen 127.0.0.1:$NGINX_PORT ssl;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        location = /healthz { return 200 "ok\n"; }
    }
}
NGX
  taskset -c "$SERVER_CPU" nginx -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
  PID[nginx]=$!; PIDS+=("${PID[nginx]}")
  PORT[nginx]=$NGINX_PORT; PATHS[nginx]=/healthz
fi
for s in $SERVERS; do
  for _ in $(seq 100); do
    curl -sf --cacert ca.pem "https://127.0.0.1:${PORT[$s]}${PATHS[$s]}" >/dev/null && break
    sleep 0.1
  done
  curl -sf --cacert ca.pem "https://127.0.0.1:${PORT[$s]}${PATHS[$s]}" >/dev/null \
    || { log "$s did not start"; cat "$WORK"/*.log "$WORK"/nginx/error.log 2>/dev/null; exit 1; }
done

# CPU seconds (user + system) of a process and its children's threads.
cpu_ticks() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    [ -r "/proc/$p/stat" ] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}

echo "| round | server | handshakes | connections | of them resumed | conn/s | server CPU s | server µs per handshake | handshakes per core-second |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|"
for round in $(seq "$ROUNDS"); do
  for mode in new reuse; do
    for s in $SERVERS; do
      before=$(cpu_ticks "${PID[$s]}")
      clients=()
      for c in $(seq "$CLIENTS"); do
        taskset -c "$CLIENT_CPU" openssl s_time -connect "127.0.0.1:${PORT[$s]}" "-$mode" \
          -time "$DURATION" -www "${PATHS[$s]}" -CAfile ca.pem > "s_time.$c" 2>&1 &
        clients+=($!)
      done
      wait "${clients[@]}" || true
      after=$(cpu_ticks "${PID[$s]}")
      conns=0; reused=0
      for c in $(seq "$CLIENTS"); do
        n=$(grep -o '^[0-9]* connections in [0-9]* real' "s_time.$c" | awk '{print $1}' | tail -1)
        conns=$((conns + ${n:-0}))
        # s_time prints one character per connection: `r` for a resumed session.
        r=$( (grep -E '^[*r]+$' "s_time.$c" || true) | tr -cd 'r' | wc -c)
        reused=$((reused + r))
      done
      cpu=$(echo "scale=3; ($after - $before) / $CLK_TCK" | bc)
      awk -v r="$round" -v s="$s" -v m="$mode" -v n="$conns" -v re="$reused" -v d="$DURATION" -v cpu="$cpu" \
        'BEGIN { printf "| %s | %s | %s | %d | %d | %.0f | %.2f | %.1f | %.0f |\n", r, s, (m=="new"?"full":"resumed"), n, re, n/d, cpu, (n>0?cpu*1e6/n:0), (cpu>0?n/cpu:0) }'
    done
  done
done

# ---- wrk: a new connection per request (`Connection: close`, full handshakes: wrk keeps no
# sessions) with WRK_CONNS connections, latency percentiles included ----------------------------
if [ -n "${WRK_CONNS:-}" ] && command -v wrk >/dev/null; then
  echo
  echo "| round | server | wrk -c | requests/s | p50 ms | p99 ms | server CPU s | server µs per request |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|"
  for round in $(seq "$ROUNDS"); do
    for s in $SERVERS; do
      before=$(cpu_ticks "${PID[$s]}")
      taskset -c "$CLIENT_CPU" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${DURATION}s" --latency \
        -H 'Connection: close' "https://127.0.0.1:${PORT[$s]}${PATHS[$s]}" > wrk.out 2>&1 || true
      after=$(cpu_ticks "${PID[$s]}")
      rps=$(awk '/^Requests\/sec/ {print $2}' wrk.out)
      total=$(awk '/requests in/ {print $1}' wrk.out)
      p50=$(awk '$1=="50%" {print $2}' wrk.out)
      p99=$(awk '$1=="99%" {print $2}' wrk.out)
      cpu=$(echo "scale=3; ($after - $before) / $CLK_TCK" | bc)
      ms() { case "$1" in *us) echo "scale=3; ${1%us}/1000" | bc ;; *ms) echo "${1%ms}" ;; *s) echo "scale=3; ${1%s}*1000" | bc ;; *) echo "?" ;; esac; }
      awk -v r="$round" -v s="$s" -v c="$WRK_CONNS" -v rps="${rps:-0}" -v p50="$(ms "${p50:-0us}")" -v p99="$(ms "${p99:-0us}")" -v cpu="$cpu" -v n="${total:-0}" \
        'BEGIN { printf "| %s | %s | %s | %.0f | %s | %s | %.2f | %.1f |\n", r, s, c, rps, p50, p99, cpu, (n>0?cpu*1e6/n:0) }'
      grep -i "errors\|non-2xx" wrk.out || true
    done
  done
fi
