#!/usr/bin/env bash
# The one command that runs all of rkube's tests:
#   build once, clippy, unit tests + the storage suite (which starts its own throwaway etcd per test from
#   /usr/bin/etcd), then the kubectl conformance suite against a real `rkube server` on both backends.
# Exits non-zero if anything fails; the last line is the conformance suite's `N passed, N failed`.
set -euo pipefail
cd "$(dirname "$0")"

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "cargo build --release"
cargo build --release

step "cargo clippy --release --all-targets -- -D warnings"
cargo clippy --release --all-targets -- -D warnings

step "cargo test --release"
cargo test --release

step "conformance: python3 conformance/run.py --backend both"
RKUBE_BIN="${RKUBE_BIN:-$PWD/target/release/rkube}" exec python3 conformance/run.py --backend both
