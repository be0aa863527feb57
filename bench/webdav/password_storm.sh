#!/usr/bin/env bash
# Password logins at 08:00, and again at 08:05 (issue 14, part 2), scaled to this machine.
# Every user has a password of its own (`skab-loadtest users` without --skab-import; the CSV
# is imported with `skab user import`, which hashes every password: its time is reported), every
# login of the storm is Basic with that password (no app tokens, no JWTs).
#
#   first: the server has just started (nothing cached); SESSIONS sessions arrive in WINDOW_S
#          seconds (the 08:00 curve), each logs in (argon2), opens a file, then polls its home
#          every POLL_S seconds for FIRST_SESSION_S seconds.
#   later: the server is restarted and every user is logged in once (`skab-loadtest seed`, so
#          every credential is cached, all within a few seconds of each other); then the same
#          storm, with sessions that poll for LATER_SESSION_S seconds: long enough to pass the
#          credential cache's TTL_S (shortened from 300 s so that it fits), where an absolute
#          expiry makes every poll of the cohort need argon2 at once.
#
# Prints one table row per case: login (first authenticated request of a session, from its
# scheduled start, including any Retry-After waits) and poll latency apart, refusals, the
# server's CPU and its argon2 runs per CPU second (password logins per second per core).
#
# Knobs (environment): SESSIONS (4000), WINDOW_S (30), POLL_S (20), FIRST_SESSION_S (60),
# LATER_SESSION_S (150), TTL_S (60), AUTH_CONFIG (more `[auth]` lines, e.g.
# "credential_cache_max_age_s = 120"), CASES ("first later"), LABEL (first column),
# SKAB_BIN / LOADTEST_BIN (target/release/...), PORT (29643), OUT (keep results there).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SESSIONS="${SESSIONS:-4000}"
WINDOW_S="${WINDOW_S:-30}"
POLL_S="${POLL_S:-20}"
FIRST_SESSION_S="${FIRST_SESSION_S:-60}"
LATER_SESSION_S="${LATER_SESSION_S:-150}"
TTL_S="${TTL_S:-60}"
AUTH_CONFIG="${AUTH_CONFIG:-}"
CASES="${CASES:-first later}"
LABEL="${LABEL:-skab}"
SKAB="${SKAB_BIN:-$REPO/target/release/skab}"
LT="${LOADTEST_BIN:-$REPO/target/release/skab-loadtest}"
PORT="${PORT:-29643}"
WORK="$(mktemp -d /tmp/pwstorm.XXXXXX)"
OUTDIR="${OUT:-$WORK/out}"
CLK_TCK="$(getconf CLK_TCK)"
unset SKAB_BIN

SERVER=""
stop_server() {
  if [ -n "$SERVER" ]; then
    kill -TERM "$SERVER" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER" 2>/dev/null || true
    SERVER=""
  fi
}
cleanup() {
  local rc=$?
  stop_server
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT INT TERM
log() { echo "[pwstorm] $*" >&2; }

cd "$WORK"
mkdir -p "$OUTDIR"
"$LT" users --count "$SESSIONS" --tenant school --out users.csv 2>/dev/null
t0=$(date +%s.%N)
"$SKAB" user import --data-dir "$WORK/data" --csv users.csv > import.log 2>&1
t1=$(date +%s.%N)
log "import of $SESSIONS users with plaintext passwords: $(echo "$t1 - $t0" | bc) s ($(tail -n 2 import.log | tr '\n' ' '))"
printf "[auth]\ncredential_cache_ttl_s = %s\n%b\n" "$TTL_S" "$AUTH_CONFIG" > skab.toml
printf "[auth]\njwt_share = 0.0\ntoken_share = 0.0\nbasic_share = 1.0\n[seed]\nshared_content = true\nconcurrency = 16\n" > lt.toml

start_server() {
  "$SKAB" serve --config skab.toml --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" >> skab.log 2>&1 &
  SERVER=$!
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return 0
    sleep 0.1
  done
  log "skab did not start"; cat skab.log >&2; exit 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
hashes() { curl -s "http://127.0.0.1:$PORT/metrics" | awk '$1 == "skab_login_password_hashes_total" {print $2}'; }

start_server
log "seeding homes (one file each; every user logs in once)"
"$LT" seed --target "http://127.0.0.1:$PORT" --users users.csv --config lt.toml \
  --files-per-user 1 --quiet --out "$WORK/seed" >/dev/null 2>&1

echo "| build | case | sessions | requests | errors | login p50 ms | login p99 ms | login max ms | logins refused (503) | poll p50 ms | poll p99 ms | poll max ms | server CPU s | argon2 runs | argon2 runs per CPU s |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for c in $CASES; do
  stop_server
  start_server
  if [ "$c" = later ]; then
    session_s="$LATER_SESSION_S"
    log "later: logging every user in (credentials cached), then the storm"
    "$LT" seed --target "http://127.0.0.1:$PORT" --users users.csv --config lt.toml \
      --files-per-user 1 --quiet --out "$WORK/warm" >/dev/null 2>&1
  else
    session_s="$FIRST_SESSION_S"
  fi
  { cat lt.toml
    printf "[login_storm]\nwindow_s = %s\npoll_every_s = %s\nsession_s = %s\n" "$WINDOW_S" "$POLL_S" "$session_s"
  } > "lt-$c.toml"
  out="$OUTDIR/$LABEL-$c"
  before=$(cpu_ticks); h0=$(hashes)
  "$LT" run login-storm --target "http://127.0.0.1:$PORT" --users users.csv \
    --config "lt-$c.toml" --sessions "$SESSIONS" --quiet --server-pid "$SERVER" \
    --out "$out" > "$out.log" 2>&1 || true
  after=$(cpu_ticks); h1=$(hashes)
  cpu=$(echo "scale=2; ($after - $before) / $CLK_TCK" | bc)
  runs=$(echo "$h1 - $h0" | bc)
  jq -r --arg b "$LABEL" --arg c "$c" --argjson cpu "$cpu" --argjson runs "$runs" '
    def ms(x): if x == null then "-" else (x / 1000 * 10 | round / 10) end;
    "| \($b) | \($c) | \(.sessions.done) | \(.requests.total) | \(.requests.errors) | \(ms(.ops["login.basic"].latency_us.p50)) | \(ms(.ops["login.basic"].latency_us.p99)) | \(ms(.ops["login.basic"].latency_us.max)) | \(.ops["login.refused"].count // 0) | \(ms(.ops.poll.latency_us.p50)) | \(ms(.ops.poll.latency_us.p99)) | \(ms(.ops.poll.latency_us.max)) | \($cpu) | \($runs) | \(if $cpu > 0 then ($runs / $cpu * 10 | round / 10) else "-" end) |"' \
    "$out/result.json"
done
