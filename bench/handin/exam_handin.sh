#!/usr/bin/env bash
# The exam peak into one hand-in, side by side with the same uploads into private homes
# (issue 16): for each mode a fresh data dir and server, the same population and the same
# seeded uploads (`skab-loadtest run exam-peak`), then: acknowledged / lost, upload p50/p99,
# the store's disk bytes per logical byte acknowledged; in hand-in mode also every receipt
# checked against the tenant's key, every submission read back by the teacher, and the
# teacher's zip download once the hand-in closed. Results: $RESULTS/<round>-<mode>/.
#
# Env: PUPILS [20000]  WINDOW_S [120] (upload window)  LAST_S (80 % of uploads in its last LAST_S s)  ROUNDS [1]
#      RESULTS [/var/tmp/handin-bench]  PORT [19870]  BIN [target/release]
# Stops by itself (every loadtest run has --max-wall; the server is killed on exit).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="${BIN:-$REPO/target/release}"
PUPILS="${PUPILS:-20000}"
WINDOW_S="${WINDOW_S:-120}"
ROUNDS="${ROUNDS:-1}"
# 80 % of the uploads in the last LAST_S seconds [60, or half a shorter window].
LAST_S="${LAST_S:-$(( WINDOW_S < 120 ? WINDOW_S / 2 : 60 ))}"
RESULTS="${RESULTS:-/var/tmp/handin-bench}"
PORT="${PORT:-19870}"
TEACHER_PW="teacher password for the bench"
SECRET="handin-bench-$RANDOM$RANDOM$RANDOM"
WORK="$(mktemp -d /var/tmp/handin-work.XXXXXX)"
SRV=""
cleanup() { [ -n "$SRV" ] && kill "$SRV" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
mkdir -p "$RESULTS"

"$BIN/skab-loadtest" users --count "$PUPILS" --tenant school --tenants 1 \
  --out "$WORK/users.csv" --skab-import "$WORK/import.csv" 2>/dev/null
# Every pupil in the year group `year` (the import's groups column).
awk 'NR == 1 { print $0 ",groups"; next } { print $0 ",year" }' "$WORK/import.csv" >"$WORK/import-g.csv"

# Pupils present IdP JWTs (no password hash per pupil in the measurement; the homes were
# made and logged into by the seed step before, as on an exam morning).
cat >"$WORK/skab.toml" <<EOT
[[auth.jwt]]
issuer = "skab-loadtest"
audience = "skab"
algorithm = "HS256"
secret = "$SECRET"
EOT

# The whole data dir: the store, and in hand-in mode the receipt log and key too.
store_bytes() { du -sb "$1" | cut -f1; }

for round in $(seq 1 "$ROUNDS"); do
  for mode in homes handin; do
    DATA="$WORK/data-$mode"
    rm -rf "$DATA"
    "$BIN/skab" user import --data-dir "$DATA" --csv "$WORK/import-g.csv" >/dev/null
    printf '%s\n' "$TEACHER_PW" |
      "$BIN/skab" user add --data-dir "$DATA" --tenant school --user teach --password-stdin >/dev/null
    cat >"$WORK/lt.toml" <<EOT
[auth]
jwt_secret = "$SECRET"
jwt_share = 1.0
token_share = 0.0
basic_share = 0.0

[seed]
files_per_user = 1
file_size_bytes = 4096

[exam_peak]
window_s = $WINDOW_S
last_s = $LAST_S
EOT
    "$BIN/skab" serve --config "$WORK/skab.toml" --data-dir "$DATA" --listen "127.0.0.1:$PORT" >"$WORK/serve.log" 2>&1 &
    SRV=$!
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
    out="$RESULTS/$round-$mode"
    rm -rf "$out"; mkdir -p "$out"
    "$BIN/skab-loadtest" seed --target "http://127.0.0.1:$PORT" --users "$WORK/users.csv" \
      --config "$WORK/lt.toml" --out "$out/seed" --quiet --max-wall 600 2>"$out/seed.stderr" ||
      log "$mode: seed did not pass (see $out/seed.stderr)"
    if [ "$mode" = handin ]; then
      # Made after the seed step; closes 15 s after the window ends: every upload of the run is on time.
      closes="$(date -u -d "@$(( $(date +%s) + WINDOW_S + 15 ))" +%Y-%m-%dT%H:%M:%SZ)"
      "$BIN/skab" handin add --data-dir "$DATA" --tenant school --handin exam --owner teach \
        --group year --closes "$closes" >/dev/null
      key="$("$BIN/skab" receipt key --data-dir "$DATA" --tenant school)"
      cat >>"$WORK/lt.toml" <<EOT

[exam_peak.handin]
name = "exam"
teacher = "teach@school"
teacher_password = "$TEACHER_PW"
public_key = "$key"
zip_wait_s = 90
EOT
    fi
    before=$(store_bytes "$DATA")
    log "round $round: $mode, $PUPILS pupils"
    "$BIN/skab-loadtest" run exam-peak --target "http://127.0.0.1:$PORT" --users "$WORK/users.csv" \
      --config "$WORK/lt.toml" --out "$out" --server-pid "$SRV" --quiet \
      --sessions "$PUPILS" --time-scale 1 --threshold 'lost=0' \
      --max-wall $(( WINDOW_S + 240 )) 2>"$out/stderr" || log "$mode: run did not pass (see $out)"
    after=$(store_bytes "$DATA")
    echo "$before $after" >"$out/store-bytes"
    kill "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=""
    jq -r --arg b "$before" --arg a "$after" --arg m "$mode" '
      .exam as $e | (.ops.upload.latency_us // .latency_us) as $l |
      "\($m)\tacked \($e.acknowledged)\tlost \($e.lost)\tverified \($e.verified)\tp50 \($l.p50/1000) ms\tp99 \($l.p99/1000) ms\tdisk/logical \(((($a|tonumber) - ($b|tonumber)) / $e.logical_bytes_acknowledged * 100 | round) / 100)\treceipts ok \($e.receipts_verified) bad \($e.receipts_bad) missing \($e.receipts_missing)\tzip \($e.zip_status) \($e.zip_bytes) B \($e.zip_s) s"
    ' "$out/result.json" | tee -a "$RESULTS/summary.tsv"
  done
done
