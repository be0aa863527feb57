#!/usr/bin/env bash
# Root polls with many homes: a sync client's "did anything change?" (PROPFIND Depth 0 of its
# home with the Nextcloud client's properties) against skab holding 1 home and then HOMES homes
# (default 1,000,000), same binary, alternating rounds; req/s, p99 and the server's CPU per
# request. Homes are made directly through the engine (bench `homes`), accounts by
# `skab user import` (one shared password hash). docs/benchmarks.md, "Root polls with a million
# homes". Loopback only; stops its servers on exit.
#
# Knobs: HOMES (1000000), ROUNDS (3), DURATION (8s), CONNS (64), THREADS (2), NO_BUILD=1,
# BASE_PORT (29080), WORK (a fresh dir under /var/tmp).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
HOMES="${HOMES:-1000000}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-8s}"
CONNS="${CONNS:-64}"
THREADS="${THREADS:-2}"
BASE_PORT="${BASE_PORT:-29080}"
WORK="${WORK:-$(mktemp -d /var/tmp/pollhomes.XXXXXX)}"
CLK_TCK="$(getconf CLK_TCK)"
log() { echo "[poll-homes] $*" >&2; }

PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.5
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
if [ -z "${NO_BUILD:-}" ]; then
  (cd "$REPO" && cargo build --release -q -p skab-server --bin skab -p skab-bench --bin homes \
    -p skab-loadtest --bin skab-loadtest)
fi
BIN="$REPO/target/release"

# One data dir per population: users (shared hash) and homes.
setup() { # $1 name, $2 count
  local dir="$WORK/$1" width
  mkdir -p "$dir"
  "$BIN/skab-loadtest" users --count "$2" --tenant school --out "$dir/users.csv" \
    --skab-import "$dir/import.csv" >/dev/null
  "$BIN/skab" user import --data-dir "$dir/data" --csv "$dir/import.csv" >/dev/null
  width=$(( ${#2} > 6 ? ${#2} : 6 ))
  "$BIN/homes" --data-dir "$dir/data" --tenant school --prefix u --pad "$width" --count "$2" >&2
}

ticks() { awk '{ i = index($0, ") "); split(substr($0, i + 2), f, " "); print f[12] + f[13] }' "/proc/$1/stat"; }

start() { # $1 name, $2 port -> SRV_PID
  "$BIN/skab" serve --data-dir "$WORK/$1/data" --listen "127.0.0.1:$2" >"$WORK/$1.log" 2>&1 &
  SRV_PID=$!
  PIDS+=("$SRV_PID")
  for _ in $(seq 600); do
    curl -fs "http://127.0.0.1:$2/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  log "server $1 did not start"; cat "$WORK/$1.log" >&2; return 1
}

declare -A PORT PID
i=0
for pop in one many; do
  count=1; [ "$pop" = many ] && count="$HOMES"
  log "population $pop: $count homes"
  setup "$pop" "$count"
  PORT[$pop]=$((BASE_PORT + i)); i=$((i + 1))
  start "$pop" "${PORT[$pop]}"; PID[$pop]=$SRV_PID
done
# Each population has its own shared password: poll as its first user.
declare -A AUTH
for pop in one many; do
  pw=$(sed -n 2p "$WORK/$pop/users.csv" | cut -d, -f3)
  user=$(sed -n 2p "$WORK/$pop/users.csv" | cut -d, -f1)
  AUTH[$pop]="Basic $(printf '%s' "$user@school:$pw" | base64 -w0)"
done

echo "| round | homes | req/s | p50 ms | p99 ms | server CPU µs/req | RSS MiB |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for r in $(seq "$ROUNDS"); do
  for pop in one many; do
    pid=${PID[$pop]}
    s0=$(ticks "$pid")
    user=$(sed -n 2p "$WORK/$pop/users.csv" | cut -d, -f1)
    out=$(BENCH_LUA_DIR="$HERE/lua" BENCH_PREFIX="/dav/school/$user" BENCH_AUTH="${AUTH[$pop]}" \
      BENCH_DEPTH=0 BENCH_TARGET=/ BENCH_BODY=oc \
      wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$HERE/lua/propfind.lua" \
      "http://127.0.0.1:${PORT[$pop]}/" 2>&1)
    s1=$(ticks "$pid")
    line=$(grep '^RESULT' <<<"$out")
    req=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")
    dur=$(sed -E 's/.*duration_us=([0-9]+).*/\1/' <<<"$line")
    p50=$(sed -E 's/.*p50_us=([0-9]+).*/\1/' <<<"$line")
    p99=$(sed -E 's/.*p99_us=([0-9]+).*/\1/' <<<"$line")
    non2xx=$(sed -E 's/.*non2xx=([0-9]+).*/\1/' <<<"$line")
    [ "$non2xx" = 0 ] || { log "$pop: $non2xx answers were not 2xx"; exit 1; }
    rss=$(awk '/VmRSS/ { print int($2 / 1024) }' "/proc/$pid/status")
    homes=1; [ "$pop" = many ] && homes="$HOMES"
    awk -v r="$r" -v h="$homes" -v n="$req" -v d="$dur" -v a="$p50" -v b="$p99" \
        -v c=$((s1 - s0)) -v tck="$CLK_TCK" -v m="$rss" 'BEGIN {
      printf "| %d | %d | %.0f | %.2f | %.2f | %.1f | %d |\n", r, h, n / (d / 1e6), a / 1000, b / 1000,
        c / tck * 1e6 / n, m }'
  done
done
