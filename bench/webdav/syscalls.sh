#!/usr/bin/env bash
# What batching system calls across connections (io_uring for the sockets) could gain: runs skab
# under wrk (PROPFIND Depth 0 of a small file, or GET of it with OP=get; 2 threads x 64
# connections), counts the server's system calls per request by kind (perf stat on the syscall
# tracepoints), then samples its CPU (perf record) and reports the share spent entering and
# leaving the kernel and in epoll: the part io_uring could save (the TCP work inside the calls
# stays). Knobs: SKAB_BIN (target/release/skab), DURATION (8s), OP (propfind0|get), PORT (28690).
# Loopback only; stops the server and removes its scratch directory.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SKAB_BIN="${SKAB_BIN:-$REPO/target/release/skab}"
DURATION="${DURATION:-8s}"
OP="${OP:-propfind0}"
PORT="${PORT:-28690}"
PASS="bench-password-1"
WORK="$(mktemp -d /var/tmp/syscalls.XXXXXX)"
PID=""
cleanup() {
  [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "$PASS" | env -u SKAB_BIN "$SKAB_BIN" user add --data-dir "$WORK/data" --tenant bench --user u --password-stdin >/dev/null
env -u SKAB_BIN SKAB_LOG_LEVEL=warn SKAB_LIMITS_INFLIGHT_PER_ACCOUNT_MAX=0 "$SKAB_BIN" serve \
  --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" >"$WORK/out.log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.05; done
head -c 16384 /dev/urandom >"$WORK/f.bin"
curl -sf -u "u@bench:$PASS" -X MKCOL "http://127.0.0.1:$PORT/dav/bench/u/bench" >/dev/null
curl -sf -u "u@bench:$PASS" -T "$WORK/f.bin" "http://127.0.0.1:$PORT/dav/bench/u/bench/f0000.bin" >/dev/null

export BENCH_LUA_DIR="$HERE/lua" BENCH_PREFIX=/dav/bench/u
BENCH_AUTH="Basic $(printf 'u@bench:%s' "$PASS" | base64 -w0)"
export BENCH_AUTH BENCH_NFILES=1
case "$OP" in
  propfind0) script=propfind.lua; export BENCH_DEPTH=0 BENCH_TARGET=/bench/f0000.bin ;;
  get) script=get.lua ;;
  *) echo "unknown OP $OP" >&2; exit 2 ;;
esac
run_wrk() { wrk -t2 -c64 -d"$DURATION" -s "$HERE/lua/$script" "http://127.0.0.1:$PORT/" | awk '/^Requests\/sec/ {print $2}'; }

calls="raw_syscalls:sys_enter"
for c in recvfrom read readv sendto sendmsg writev write epoll_wait epoll_ctl futex io_uring_enter; do
  calls+=",syscalls:sys_enter_$c"
done
perf stat -x, -e "$calls" -p "$PID" -o "$WORK/stat.csv" &
ps_=$!
sleep 0.2
t0=$(date +%s.%N)
rps=$(run_wrk)
t1=$(date +%s.%N)
kill -INT "$ps_"; wait "$ps_" 2>/dev/null || true
reqs=$(awk -v r="$rps" -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", r * (b - a) }')
echo "$OP: $rps req/s; system calls per request (perf stat, counted over the wrk run):"
awk -F, -v n="$reqs" '$1 ~ /^[0-9]+$/ && $1 > 0 { sub(/^.*sys_enter_?/, "", $3); printf "  %-14s %6.2f\n", ($3 == "" ? "all" : $3), $1 / n }' "$WORK/stat.csv"

perf record -q -F 1999 -p "$PID" -o "$WORK/perf.data" >/dev/null 2>&1 &
pr=$!
sleep 0.2
run_wrk >/dev/null
kill -INT "$pr"; wait "$pr" 2>/dev/null || true
perf report -i "$WORK/perf.data" --no-children --sort sym --stdio 2>/dev/null >"$WORK/report.txt"
echo "CPU share of the server (perf record, self time):"
awk '/%/ && $1 ~ /%$/ { p = $1; sub(/%/, "", p); s = $NF
  if (s ~ /^(entry_SYSCALL|syscall_return|do_syscall|syscall_exit|exit_to_user|__x64_sys|x64_sys_call|syscall_enter|fpregs_restore|switch_fpu|restore_fpregs)/) entry += p
  if (s ~ /ep_poll|ep_send_events|ep_item_poll|do_epoll|epoll/) ep += p
  if (s ~ /^\[k\]/ || $0 ~ /\[k\]/) k += p
  tot += p }
  END { printf "  kernel %.1f %%, of it syscall entry/exit %.1f %% and epoll %.1f %%\n", k, entry, ep }' "$WORK/report.txt"
echo "Top symbols:"
grep -E '^ +[0-9.]+%' "$WORK/report.txt" | head -15
