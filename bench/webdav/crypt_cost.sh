#!/usr/bin/env bash
# Encryption at rest through the server: PUT and GET of the same files over loopback with
# `crypto.enabled` off and on, in alternating rounds on the same machine, then `skab scrub`
# of each data dir (server stopped). Prints one markdown row per round and mode.
# docs/benchmarks.md, "Encryption at rest".
#
# Knobs: ROUNDS (2), FILES (64), FILE_MB (4), PAR (4 parallel curl clients), SKAB (the
# binary; default target/release/skab, built unless SKIP_BUILD=1).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
ROUNDS="${ROUNDS:-2}" FILES="${FILES:-64}" FILE_MB="${FILE_MB:-4}" PAR="${PAR:-4}"
SKAB="${SKAB:-$REPO/target/release/skab}"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  (cd "$REPO" && cargo build --release -q -p skab-server)
fi
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
OUT="$(mktemp -d /var/tmp/cryptcost.XXXXXX)"
trap 'kill "${PID:-}" 2>/dev/null || true; rm -rf "$OUT"' EXIT
mkdir -p "$OUT/files"
for i in $(seq "$FILES"); do
  head -c "$((FILE_MB << 20))" /dev/urandom >"$OUT/files/f$i"
done
MB=$((FILES * FILE_MB))
PW="bench password 1234"
now() { date +%s.%N; }
rate() { awk -v mb="$MB" -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", mb / (b - a) }'; }

echo "| round | encryption | PUT MB/s | GET MB/s | scrub s ($MB MiB) |"
echo "| --- | --- | --- | --- | --- |"
for r in $(seq "$ROUNDS"); do
  for mode in off on; do
    T="$OUT/$mode-$r"
    mkdir -p "$T"
    if [ "$mode" = on ]; then
      "$SKAB" key generate --out "$T/master.key" >/dev/null
      printf '[crypto]\nenabled = true\nkey_store = "%s/keys"\nmaster_key_file = "%s/master.key"\n' \
        "$T" "$T" >"$T/skab.toml"
    else
      : >"$T/skab.toml"
    fi
    echo "$PW" | "$SKAB" user add --data-dir "$T/data" --tenant bench --user u --password-stdin >/dev/null
    PORT=$((20000 + RANDOM % 20000))
    "$SKAB" serve --data-dir "$T/data" --config "$T/skab.toml" --listen "127.0.0.1:$PORT" \
      >"$T/server.log" 2>&1 &
    PID=$!
    for _ in $(seq 200); do
      curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
      sleep 0.05
    done
    URL="http://127.0.0.1:$PORT/dav/bench/u"
    a=$(now)
    ls "$OUT/files" | xargs -P "$PAR" -I{} curl -sf -o /dev/null -u "u@bench:$PW" \
      -T "$OUT/files/{}" "$URL/{}"
    b=$(now)
    ls "$OUT/files" | xargs -P "$PAR" -I{} curl -sf -o /dev/null -u "u@bench:$PW" "$URL/{}"
    c=$(now)
    kill -TERM "$PID"; wait "$PID" || true
    PID=
    d=$(now)
    "$SKAB" scrub --data-dir "$T/data" --config "$T/skab.toml" >"$T/scrub.log"
    e=$(now)
    printf '| %s | %s | %s | %s | %.2f |\n' "$r" "$mode" "$(rate "$a" "$b")" "$(rate "$b" "$c")" \
      "$(awk -v a="$d" -v b="$e" 'BEGIN { print b - a }')"
    rm -rf "$T"
  done
done
