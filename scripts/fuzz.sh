#!/usr/bin/env bash
# Fuzz smoke run: builds every cargo-fuzz target in fuzz/, replays each committed corpus
# (fuzz/corpus/<target>/), then fuzzes each target for SECONDS (default 10; 0 = replay only).
# Fails on any crash, panic, timeout or out-of-memory. Inputs found on the way go to a scratch
# directory, never into the committed corpus; a crashing input is kept in fuzz/artifacts/.
# Targets can be narrowed with FUZZ_TARGETS="dav_xml engine_wal_record". See docs/reliability.md.
set -euo pipefail
secs="${1:-10}"
case "$secs" in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
cd "$(dirname "$0")/../fuzz"

# cargo-fuzz needs nightly flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# Optimised, with debug assertions and overflow checks; no sanitizer (safe Rust: panics are
# what we look for, and ASan would halve the executions on our 2 cores).
flags=(-O -a -s none)
targets="${FUZZ_TARGETS:-$(cd fuzz_targets && ls -- *.rs | sed 's/\.rs$//')}"
cargo fuzz build "${flags[@]}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Runs one libFuzzer invocation with its output in a log; on failure shows the log's tail.
run() {
    local t="$1" log="$work/$1.log"
    shift
    if ! cargo fuzz run "${flags[@]}" "$t" "$@" >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "fuzz target $t FAILED (crashing input in fuzz/artifacts/$t/)" >&2
        exit 1
    fi
    grep -E "^stat::(number_of_executed_units|new_units_added)|^Done [0-9]+ runs" "$log" || true
}

for t in $targets; do
    [ -f "fuzz_targets/$t.rs" ] || { echo "no fuzz target $t" >&2; exit 2; }
    mkdir -p "corpus/$t" "$work/$t"
    echo "== $t: replaying $(find "corpus/$t" -type f | wc -l) corpus inputs"
    run "$t" "corpus/$t" -- -runs=0 -timeout=10 -rss_limit_mb=2048
    if [ "$secs" -gt 0 ]; then
        echo "== $t: fuzzing for ${secs}s"
        run "$t" "$work/$t" "corpus/$t" -- -max_total_time="$secs" -timeout=10 \
            -rss_limit_mb=2048 -print_final_stats=1
    fi
done
echo "fuzzing: all targets passed"
