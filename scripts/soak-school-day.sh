#!/usr/bin/env bash
# Soak: the skab-loadtest `school-day` scenario against a release `skab` on loopback for
# SECS seconds (default 600), with `skab gc` (expire, collect, compact) every GC_EVERY
# seconds, RSS sampled every 10 s, and `skab scrub` at the end. Prints a summary line.
# Bounded in time; 127.0.0.1 only. Results: docs/reliability.md ("Soak").
set -euo pipefail
SECS="${1:-600}"
GC_EVERY="${GC_EVERY:-20}"
RATE="${RATE:-200}"
cd "$(dirname "$0")/.."
cargo build --release -q -p skab-server -p skab-loadtest
BIN=target/release
work="$(mktemp -d)"
port=$((20000 + RANDOM % 20000))
cleanup() { [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
$BIN/skab-loadtest users --count 200 --tenant school --out "$work/users.csv" --skab-import "$work/import.csv" >/dev/null
$BIN/skab user import --data-dir "$work/data" --csv "$work/import.csv" >/dev/null
printf '[storage]\ntrash_retention_s = 60\n' > "$work/skab.toml"
$BIN/skab serve --data-dir "$work/data" --config "$work/skab.toml" --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
spid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
$BIN/skab-loadtest seed --target "http://127.0.0.1:$port" --users "$work/users.csv" --files-per-user 3 --quiet >/dev/null
printf '[school_day]\nrate_per_s = %s\n' "$RATE" > "$work/lt.toml"
rss() { awk '/VmRSS/ {print $2}' "/proc/$spid/status"; }
(
    end=$((SECONDS + SECS))
    while [ $SECONDS -lt $end ]; do
        sleep "$GC_EVERY"
        $BIN/skab gc --data-dir "$work/data" --compact-ratio 0.2 >>"$work/gc.log" 2>&1 || echo "gc failed" >>"$work/gc.log"
    done
) &
gcpid=$!
(
    end=$((SECONDS + SECS))
    while [ $SECONDS -lt $end ]; do echo "$SECONDS $(rss)"; sleep 10; done
) >"$work/rss.log" &
rsspid=$!
status=0
$BIN/skab-loadtest run school-day --target "http://127.0.0.1:$port" --users "$work/users.csv" \
    --config "$work/lt.toml" --duration "$SECS" --out "$work/out" --threshold 'errors=0' \
    --server-pid "$spid" --quiet >"$work/run.log" 2>&1 || status=$?
wait "$gcpid" "$rsspid" 2>/dev/null || true
scrub=ok
$BIN/skab scrub --data-dir "$work/data" >"$work/scrub.log" 2>&1 || scrub=FAILED
gc_runs=$(grep -c "collected" "$work/gc.log" || true)
gc_fail=$(grep -c "gc failed" "$work/gc.log" || true)
first=$(sed -n 3p "$work/rss.log" | awk '{print $2}')
last=$(tail -1 "$work/rss.log" | awk '{print $2}')
echo "soak school-day: secs=$SECS loadtest_exit=$status gc_runs=$gc_runs gc_failures=$gc_fail rss_kib_after_30s=$first rss_kib_end=$last scrub=$scrub"
grep -E "ops|errors|requests" "$work/run.log" | tail -5 || true
cp "$work/out/result.json" /tmp/soak-school-day-result.json 2>/dev/null || true
cat "$work/rss.log" > /tmp/soak-school-day-rss.log
[ "$status" = 0 ] && [ "$scrub" = ok ] && [ "$gc_fail" = 0 ]
