#!/usr/bin/env bash
# The login storm over TLS with connection churn: skab serving TLS itself vs nginx terminating
# TLS in front of skab (plain HTTP upstream, keep-alive), side by side in one run (alternating,
# ROUNDS times). Same users (JWT logins, so no password hashing), same seeded homes, same
# `skab-loadtest run login-storm` over https:// with `--churn CHURN --resumption RESUMPTION`.
# Reports per run: requests, p99, TLS handshakes (full / resumed), the serving side's CPU
# seconds (skab; nginx + the skab behind it) and CPU per session, and what a million sessions
# on the same curve would take: the mean cores over the hour (CPU per session x 1,000,000 /
# 3600 s) and the cores at the peak arrival rate (CPU per session x peak sessions/s).
#
# Knobs (environment): SESSIONS (5000), TIME_SCALE (60), CHURN (0.5), RESUMPTION (0.8),
# ROUNDS (1), CASES ("skab nginx"), SKAB_BIN / LOADTEST_BIN (target/release/...), BASE_PORT
# (29543), OUT (results directory; default: a temporary one, removed).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SESSIONS="${SESSIONS:-5000}"
TIME_SCALE="${TIME_SCALE:-60}"
CHURN="${CHURN:-0.5}"
RESUMPTION="${RESUMPTION:-0.8}"
ROUNDS="${ROUNDS:-1}"
CASES="${CASES:-skab nginx}"
SKAB="${SKAB_BIN:-$REPO/target/release/skab}"
LT="${LOADTEST_BIN:-$REPO/target/release/skab-loadtest}"
BASE_PORT="${BASE_PORT:-29543}"
WORK="$(mktemp -d /tmp/tlsstorm.XXXXXX)"
OUTDIR="${OUT:-$WORK/out}"
CLK_TCK="$(getconf CLK_TCK)"
SECRET="tls-storm-bench-secret-0123456789abcdef"
unset SKAB_BIN

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
log() { echo "[tlsstorm] $*" >&2; }

cd "$WORK"
mkdir -p "$OUTDIR"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext.cnf
EC=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
openssl req -x509 -nodes -days 2 -subj /CN=bench-ca "${EC[@]}" -keyout ca.key -out ca.pem 2>/dev/null
openssl req -nodes -subj /CN=localhost "${EC[@]}" -keyout key.pem -out leaf.csr 2>/dev/null
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
  -extfile ext.cnf -out cert.pem 2>/dev/null

"$LT" users --count "$SESSIONS" --tenant school --out users.csv --skab-import import.csv 2>/dev/null
JWT="[[auth.jwt]]\nissuer = \"skab-loadtest\"\naudience = \"skab\"\nalgorithm = \"HS256\"\nsecret = \"$SECRET\"\n"
printf "[auth]\njwt_secret = \"$SECRET\"\njwt_share = 1.0\ntoken_share = 0.0\nbasic_share = 0.0\n[seed]\nshared_content = true\nmkcol_home = false\n" > lt.toml

declare -A URL PID EXTRA
# skab serving TLS itself.
SKAB_TLS_PORT=$BASE_PORT
# nginx terminating TLS, proxying to a second skab on plain HTTP.
NGINX_PORT=$((BASE_PORT + 1))
PLAIN_PORT=$((BASE_PORT + 2))
start_skab() { # name port config
  mkdir -p "$1"
  "$SKAB" user import --data-dir "$WORK/$1/data" --csv import.csv >/dev/null 2>&1
  printf "%b" "$3" > "$1/skab.toml"
  "$SKAB" serve --config "$1/skab.toml" --data-dir "$WORK/$1/data" --listen "127.0.0.1:$2" \
    > "$1/skab.log" 2>&1 &
  PID[$1]=$!; PIDS+=("${PID[$1]}")
}
if [[ " $CASES " == *" skab "* ]]; then
  start_skab skab "$SKAB_TLS_PORT" "[tls]\ncert = \"$WORK/cert.pem\"\nkey = \"$WORK/key.pem\"\n$JWT"
  URL[skab]="https://127.0.0.1:$SKAB_TLS_PORT"
fi
if [[ " $CASES " == *" nginx "* ]]; then
  start_skab upstream "$PLAIN_PORT" "[http]\ntrusted_proxies = [\"127.0.0.1\"]\n$JWT"
  mkdir -p nginx
  cat > nginx/nginx.conf <<NGX
worker_processes auto;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 8192; }
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
    upstream skab { server 127.0.0.1:$PLAIN_PORT; keepalive 256; }
    server {
        listen 127.0.0.1:$NGINX_PORT ssl;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        client_max_body_size 0;
        location / {
            proxy_pass http://skab;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_buffering off;
            proxy_request_buffering off;
        }
    }
}
NGX
  nginx -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
  PID[nginx]=$!; PIDS+=("${PID[nginx]}")
  URL[nginx]="https://127.0.0.1:$NGINX_PORT"
fi
for c in $CASES; do
  for _ in $(seq 200); do
    curl -sf --cacert ca.pem "${URL[$c]}/healthz" >/dev/null && break
    sleep 0.1
  done
  curl -sf --cacert ca.pem "${URL[$c]}/healthz" >/dev/null || { log "$c did not start"; exit 1; }
  log "seeding $c"
  "$LT" seed --target "${URL[$c]}" --ca-cert ca.pem --users users.csv --config lt.toml \
    --files-per-user 2 --quiet --out "$WORK/seed-$c" >/dev/null 2>&1
done

# CPU ticks of the serving side: a process and its children (nginx workers).
ticks_of() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    [ -r "/proc/$p/stat" ] && total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}
serving_ticks() {
  case "$1" in
    skab) ticks_of "${PID[skab]}" ;;
    nginx) echo $(( $(ticks_of "${PID[nginx]}") + $(ticks_of "${PID[upstream]}") )) ;;
  esac
}

echo "| round | TLS by | sessions | requests | errors | p99 ms | full handshakes | resumed | serving CPU s | CPU ms per session | 1M sessions: mean cores over the hour | 1M sessions: cores at the peak arrival rate | generator behind |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
for round in $(seq "$ROUNDS"); do
  for c in $CASES; do
    out="$OUTDIR/$c-r$round"
    before=$(serving_ticks "$c")
    "$LT" run login-storm --target "${URL[$c]}" --ca-cert ca.pem --users users.csv \
      --config lt.toml --sessions "$SESSIONS" --time-scale "$TIME_SCALE" \
      --churn "$CHURN" --resumption "$RESUMPTION" --quiet --out "$out" > "$out.log" 2>&1 || true
    after=$(serving_ticks "$c")
    jq -r --arg r "$round" --arg c "$c" --argjson cpu "$(echo "scale=3; ($after - $before) / $CLK_TCK" | bc)" \
      --argjson scale "$TIME_SCALE" '
      ( [.ops | to_entries[] | select(.key != "session") | .value.count] | add ) as $req
      | (.config.login_storm.window_s / $scale) as $window_wall
      | "| \($r) | \($c) | \(.sessions.done) | \($req) | \(.requests.errors) | \(.latency_us.p99 / 1000 * 10 | round / 10) | \(.connections.tls_full) | \(.connections.tls_resumed) | \($cpu) | \($cpu / .sessions.done * 1000 * 1000 | round / 1000) | \($cpu / .sessions.done * 1000000 / ($window_wall * $scale) * 10 | round / 10) | \($cpu / .sessions.done * .login_storm.peak_scheduled_logins_per_s / $scale * 1000000 / .sessions.done * 10 | round / 10) | \(.generator.behind_schedule) |"' \
      "$out/result.json"
  done
done
