#!/usr/bin/env bash
# The access log's cost at the peak: the same skab binary with `log.access` off and writing JSON
# lines to a file, side by side in alternating rounds, on the two cheapest requests (where a log
# line weighs most): GET of a 16 KiB file and a sync client's root poll (PROPFIND Depth 0).
# req/s, p99 and server CPU per request. docs/benchmarks.md, "Access log cost". Loopback only.
#
# Knobs: ROUNDS (3), DURATION (8s), CONNS (64), THREADS (2), NO_BUILD=1, BASE_PORT (29180).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-8s}"
CONNS="${CONNS:-64}"
THREADS="${THREADS:-2}"
BASE_PORT="${BASE_PORT:-29180}"
WORK="$(mktemp -d /var/tmp/accesslog.XXXXXX)"
CLK_TCK="$(getconf CLK_TCK)"
PASS="bench-password-1"
log() { echo "[access-log] $*" >&2; }

PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.5
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
[ -n "${NO_BUILD:-}" ] || (cd "$REPO" && cargo build --release -q -p skab-server --bin skab)
SKAB="$REPO/target/release/skab"
ticks() { awk '{ i = index($0, ") "); split(substr($0, i + 2), f, " "); print f[12] + f[13] }' "/proc/$1/stat"; }

declare -A PORT PID
i=0
for mode in off on; do
  dir="$WORK/$mode"
  mkdir -p "$dir"
  echo "$PASS" | "$SKAB" user add --data-dir "$dir/data" --tenant bench --user u --password-stdin >/dev/null
  access="off"; [ "$mode" = on ] && access="$dir/access.log"
  printf '[log]\naccess = "%s"\n' "$access" >"$dir/skab.toml"
  PORT[$mode]=$((BASE_PORT + i)); i=$((i + 1))
  "$SKAB" serve --config "$dir/skab.toml" --data-dir "$dir/data" --listen "127.0.0.1:${PORT[$mode]}" \
    >"$dir/server.log" 2>&1 &
  PID[$mode]=$!
  PIDS+=("${PID[$mode]}")
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:${PORT[$mode]}/healthz" >/dev/null && break; sleep 0.1; done
  head -c 16384 /dev/urandom >"$WORK/f.bin"
  curl -fs -u "u@bench:$PASS" -X MKCOL "http://127.0.0.1:${PORT[$mode]}/dav/bench/u/bench/" >/dev/null
  curl -fs -u "u@bench:$PASS" -T "$WORK/f.bin" "http://127.0.0.1:${PORT[$mode]}/dav/bench/u/bench/f0000.bin"
done
auth="Basic $(printf 'u@bench:%s' "$PASS" | base64 -w0)"

echo "| round | op | access log | req/s | p99 ms | server CPU µs/req |"
echo "| --- | --- | --- | --- | --- | --- |"
for r in $(seq "$ROUNDS"); do
  for op in get poll; do
    for mode in off on; do
      pid=${PID[$mode]}
      case "$op" in
        get) script=get.lua; extra=(BENCH_NFILES=1) ;;
        poll) script=propfind.lua; extra=(BENCH_DEPTH=0 BENCH_TARGET=/ BENCH_BODY=oc) ;;
      esac
      s0=$(ticks "$pid")
      out=$(env BENCH_LUA_DIR="$HERE/lua" BENCH_PREFIX="/dav/bench/u" BENCH_AUTH="$auth" "${extra[@]}" \
        wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$HERE/lua/$script" \
        "http://127.0.0.1:${PORT[$mode]}/" 2>&1)
      s1=$(ticks "$pid")
      line=$(grep '^RESULT' <<<"$out")
      get_f() { sed -E "s/.*$1=([0-9]+).*/\\1/" <<<"$line"; }
      [ "$(get_f non2xx)" = 0 ] || { log "$mode $op: non-2xx answers"; echo "$out" >&2; exit 1; }
      awk -v r="$r" -v op="$op" -v m="$mode" -v n="$(get_f requests)" -v d="$(get_f duration_us)" \
          -v p="$(get_f p99_us)" -v c=$((s1 - s0)) -v t="$CLK_TCK" 'BEGIN {
        printf "| %d | %s | %s | %.0f | %.2f | %.1f |\n", r, op, m, n / (d / 1e6), p / 1000, c / t * 1e6 / n }'
    done
  done
done
lines=$(wc -l <"$WORK/on/access.log")
log "access log lines written: $lines"
