#!/usr/bin/env bash
# The whole test suite: installs what the tests need on a fresh Debian machine, then checks
# formatting and lints and runs every test. README.md names this command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real WebDAV clients the server is tested with (litmus, cadaver, rclone, the Nextcloud and
# ownCloud desktop sync clients), and the browser that checks the loadtest report (Debian's
# chromium), and nginx (the reverse proxy of server/tests/it/behind_proxy.rs); systemd-analyze and
# logrotate check the files in packaging/ (server/tests/it/packaging.rs); curl speaks the OCS share API
# (server/tests/it/spaces.rs).
# The desktop sync clients (nextcloudcmd, owncloudcmd) come in packages of other names.
need=()
for pair in litmus:litmus cadaver:cadaver rclone:rclone chromium:chromium openssl:openssl \
    nextcloudcmd:nextcloud-desktop-cmd owncloudcmd:owncloud-client-cmd nginx:nginx \
    systemd-analyze:systemd logrotate:logrotate curl:curl; do
    tool="${pair%%:*}"
    command -v "$tool" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
    echo "installing test tools: ${need[*]}"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Garage and etcd for the object-storage tests (server/tests/it/object_storage.rs): built or
# installed once into ~/.cache/skab-tools (Garage: about 7 minutes on 2 cores).
scripts/cluster.sh install

# A clean checkout gains nothing from incremental caches; they would double the disk used.
export CARGO_INCREMENTAL=0
df -h . | tail -n 1 | awk '{print "disk before the build: " $4 " free"}'

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --workspace --no-fail-fast
du -sh target 2>/dev/null | awk '{print "target/ after the tests: " $1}'
# Every fuzz target: replay its committed corpus, then fuzz it briefly (docs/reliability.md).
scripts/fuzz.sh 5
