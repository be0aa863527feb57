#!/usr/bin/env bash
# The audit log's cost under the login storm: scripts/loadtest-full.sh (skab only, login-storm)
# with `log.audit` off and on (SKAB_LOG_AUDIT), in alternating rounds, same population and
# rates. Prints p99 of all requests and of logins, errors and server CPU seconds per round;
# the issue's bar: the storm's p99 moves by at most 10 %. docs/benchmarks.md, "Audit log cost".
#
# Knobs: ROUNDS (2), SESSIONS (20000), TIME_SCALE (60), SKIP_BUILD=1, and every knob of
# scripts/loadtest-full.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
ROUNDS="${ROUNDS:-2}"
OUT="$(mktemp -d /var/tmp/auditcost.XXXXXX)"
export SESSIONS="${SESSIONS:-20000}" TIME_SCALE="${TIME_SCALE:-60}" SERVERS=skab PEERS= \
  SCENARIOS=login-storm NO_LOOP="${NO_LOOP:-1}"
command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }
echo "| round | audit | requests | errors | p99 all ms | p99 login ms | server CPU s |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for r in $(seq "$ROUNDS"); do
  for mode in false true; do
    res="$OUT/r$r-$mode"
    SKAB_LOG_AUDIT="$mode" RESULTS="$res" "$REPO/scripts/loadtest-full.sh" >"$res.log" 2>&1 || true
    export SKIP_BUILD=1
    json="$(find "$res" -path "*login-storm/result.json" | head -1)"
    [ -n "$json" ] || { echo "round $r audit=$mode: no result.json (see $res.log)" >&2; tail -20 "$res.log" >&2; exit 1; }
    jq -r --arg r "$r" --arg m "$mode" '
      [ $r, $m, .requests.total, .requests.errors,
        (.latency_us.p99 / 1000 | tostring),
        ([.ops | to_entries[] | select(.key | startswith("login")) | .value.latency_us.p99] | max / 1000 | tostring),
        ((.server.cpu_s // .server_cpu_s // "-") | tostring) ]
      | "| " + join(" | ") + " |"' "$json"
  done
done
echo "results: $OUT" >&2
