#!/usr/bin/env bash
# GET of a 16 KiB file over TLS keep-alive (ECDSA P-256 test certificate, wrk 2 threads x 64
# connections, Basic auth), two skab binaries side by side in interleaved rounds: BASE_SKAB_BIN
# and SKAB_BIN (target/release/skab). Knobs: ROUNDS (3), DURATION (6s). Loopback only; stops
# both servers and removes its scratch directory.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SKAB_BIN="${SKAB_BIN:-$HERE/../../target/release/skab}"
BASE="${BASE_SKAB_BIN:?BASE_SKAB_BIN names the skab binary to compare with}"
W=$(mktemp -d /var/tmp/tlska.XXXXXX)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; sleep 1; rm -rf "$W"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -keyout "$W/key.pem" -out "$W/cert.pem" 2>/dev/null
head -c 16384 /dev/urandom >"$W/f.bin"
start() { # binary port
  echo bench-password-1 | env -u SKAB_BIN "$1" user add --data-dir "$W/d$2" --tenant bench --user u --password-stdin >/dev/null
  env -u SKAB_BIN SKAB_TLS_CERT="$W/cert.pem" SKAB_TLS_KEY="$W/key.pem" SKAB_LOG_LEVEL=warn \
    "$1" serve --data-dir "$W/d$2" --listen "127.0.0.1:$2" >"$W/log$2" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sk -o /dev/null "https://127.0.0.1:$2/healthz" && break; sleep 0.05; done
  curl -sfk -u u@bench:bench-password-1 -T "$W/f.bin" "https://127.0.0.1:$2/dav/bench/u/f.bin"
}
start "$BASE" 28601
start "$SKAB_BIN" 28602
AUTH="Authorization: Basic $(printf u@bench:bench-password-1 | base64 -w0)"
for r in $(seq "${ROUNDS:-3}"); do
  for p in 28601 28602; do
    n=base; [ $p = 28602 ] && n=skab
    echo "round $r $n: $(wrk -t2 -c64 -d"${DURATION:-6s}" -H "$AUTH" "https://127.0.0.1:$p/dav/bench/u/f.bin" |
      grep -E 'Requests/sec|Non-2xx' | tr -s ' ' | tr '\n' ' ')"
  done
done
