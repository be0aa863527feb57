#!/usr/bin/env bash
# Regenerates the capacity figures and the worked examples (docs/capacity.md):
#   scripts/capacity.sh
# builds the release binaries, runs `skab-capacity measure` (each size built on top of the
# previous one, then measured: memory, disk, recovery, metadata rates, scrub, GC and compaction
# with foreground p99, and the login storm and exam peak against `skab serve` on the data),
# copies capacity.json and capacity.html into docs/, and rewrites the worked examples between
# the markers in docs/capacity.md from them. Settings (environment):
#   DATA   directory on the disk to measure (default /tmp/skab-capacity; must not hold a
#          `capacity-data` yet; the data is removed afterwards)
#   USERS  sizes (default 10000,100000,1000000), FILES files per user (default 2),
#   SCALE  file size scale (default 0.05: 1,000,000 users take ~11 GB), TENANTS (default 100),
#   SESSIONS login-storm sessions and exam-peak pupils per size (default 1000)
# Ctrl-C stops it and keeps what was measured in $DATA/out/capacity.json (docs/ is then left as
# it was). A full default run took 15 minutes on the development machine (2 cores, loaded),
# the release build included; it needs ~11 GB of disk under $DATA.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-/tmp/skab-capacity}
USERS=${USERS:-10000,100000,1000000}
FILES=${FILES:-2}
SCALE=${SCALE:-0.05}
TENANTS=${TENANTS:-100}
SESSIONS=${SESSIONS:-1000}

cargo build --release -p skab-bench --bin skab-capacity -p skab-server --bin skab \
    -p skab-loadtest --bin skab-loadtest
mkdir -p "$DATA"
./target/release/skab-capacity measure --data-dir "$DATA" --users "$USERS" \
    --files-per-user "$FILES" --size-scale "$SCALE" --tenants "$TENANTS" \
    --sessions "$SESSIONS" --out "$DATA/out"
cp "$DATA/out/capacity.json" docs/capacity.json
cp "$DATA/out/capacity.html" docs/capacity.html
./target/release/skab-capacity examples --from docs/capacity.json >"$DATA/examples.md"
# Replace what lies between the markers with the new examples.
awk -v f="$DATA/examples.md" '
    /<!-- examples: begin/ { print; while ((getline l < f) > 0) print l; skip = 1; next }
    /<!-- examples: end/ { skip = 0 }
    !skip { print }
' docs/capacity.md >"$DATA/capacity.md"
mv "$DATA/capacity.md" docs/capacity.md
echo "docs/capacity.json, docs/capacity.html and the examples of docs/capacity.md regenerated"
