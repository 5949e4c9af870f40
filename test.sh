#!/usr/bin/env bash
# The one command that runs all of rkube's tests:
#   build once (binary and unit tests in one cargo run), clippy, unit tests + the storage suite (which starts its own throwaway etcd per test from
#   /usr/bin/etcd), then the kubectl conformance suite against a real `rkube server` on both backends
#   (the two passes side by side; `--serial` in run.py runs them one after the other).
# A failing clippy or cargo test does not stop the conformance run; the script still exits non-zero.
# The last line is the conformance suite's `N passed, N failed`.
set -euo pipefail
cd "$(dirname "$0")"

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }
failed=()

# One cargo run builds the library, its unit tests and the binary: the library and its unit-test build
# compile side by side (rustc's front end is single-threaded, so on two cores each fills the other's
# idle core), and the conformance suite then runs this binary. (A separate `cargo build --release` would
# compile the library a third time: the test build's dependencies carry the dev-dependencies' features.)
# Only when a test does not compile is the binary built alone, so that the conformance suite still runs.
step "cargo test --release --no-run"
if ! cargo test --release --no-run; then
  failed+=("cargo test (build)")
  step "cargo build --release"
  cargo build --release
fi
# (Integration tests make cargo build the binary; should there ever be none, build it here.)
[ -x target/release/rkube ] || cargo build --release

step "cargo clippy --release --all-targets -- -D warnings"
cargo clippy --release --all-targets -- -D warnings || failed+=("cargo clippy")

step "cargo test --release"
cargo test --release || failed+=("cargo test")

step "conformance: python3 conformance/run.py --backend both"
log="$(mktemp /tmp/rkube-conformance.XXXXXX.log)"
trap 'rm -f "$log"' EXIT
conformance_rc=0
RKUBE_BIN="${RKUBE_BIN:-$PWD/target/release/rkube}" python3 conformance/run.py --backend both 2>&1 | tee "$log" \
  || conformance_rc=$?
[ "$conformance_rc" -eq 0 ] || failed+=("conformance")

if [ "${#failed[@]}" -gt 0 ]; then
  printf '\nFAILED: %s\n' "${failed[*]}"
  # keep the conformance counts as the very last line
  last="$(tail -n 1 "$log")"
  if [[ "$last" =~ ^[0-9]+\ passed,\ [0-9]+\ failed$ ]]; then echo "$last"; fi
  exit 1
fi
