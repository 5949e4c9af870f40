#!/usr/bin/env bash
# The one command that runs all of rkube's tests:
#   build once, clippy, unit tests + the storage suite (embedded and a real etcd), then the kubectl
#   conformance suite against a real `rkube server` on both backends.
# Exits non-zero if anything fails; the last line is the conformance suite's `N passed, N failed`.
set -euo pipefail
cd "$(dirname "$0")"

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "cargo build --release"
cargo build --release

step "cargo clippy --release --all-targets -- -D warnings"
cargo clippy --release --all-targets -- -D warnings

# The storage suite runs against the embedded store and against a real etcd: start a throwaway etcd
# on free loopback ports for it (stopped on exit).
ETCD_BIN="${ETCD_BIN:-$(command -v etcd || echo /usr/bin/etcd)}"
etcd_dir="$(mktemp -d /tmp/rkube-test-etcd.XXXXXX)"
etcd_pid=""
cleanup() {
  if [ -n "$etcd_pid" ] && kill -0 "$etcd_pid" 2>/dev/null; then
    kill "$etcd_pid" 2>/dev/null || true
    wait "$etcd_pid" 2>/dev/null || true
  fi
  rm -rf "$etcd_dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
client_port="$(free_port)"
peer_port="$(free_port)"
step "etcd for the storage suite on 127.0.0.1:${client_port}"
if [ "$(uname -m)" = aarch64 ]; then export ETCD_UNSUPPORTED_ARCH=arm64; fi
"$ETCD_BIN" --name rkube-test --data-dir "$etcd_dir/data" \
  --listen-client-urls "http://127.0.0.1:${client_port}" --advertise-client-urls "http://127.0.0.1:${client_port}" \
  --listen-peer-urls "http://127.0.0.1:${peer_port}" --initial-advertise-peer-urls "http://127.0.0.1:${peer_port}" \
  --initial-cluster "rkube-test=http://127.0.0.1:${peer_port}" >"$etcd_dir/etcd.log" 2>&1 &
etcd_pid=$!
for _ in $(seq 1 150); do
  if curl -fsS "http://127.0.0.1:${client_port}/health" 2>/dev/null | grep -q true; then break; fi
  if ! kill -0 "$etcd_pid" 2>/dev/null; then echo "etcd exited:"; tail -n 30 "$etcd_dir/etcd.log"; exit 1; fi
  sleep 0.2
done
curl -fsS "http://127.0.0.1:${client_port}/health" | grep -q true || { echo "etcd not healthy"; tail -n 30 "$etcd_dir/etcd.log"; exit 1; }
export RKUBE_TEST_ETCD_ENDPOINTS="http://127.0.0.1:${client_port}"

step "cargo test --release (RKUBE_TEST_ETCD_ENDPOINTS=$RKUBE_TEST_ETCD_ENDPOINTS)"
cargo test --release

# The conformance suite starts its own etcd; stop this one first.
cleanup
trap - EXIT

step "conformance: python3 conformance/run.py --backend both"
RKUBE_BIN="${RKUBE_BIN:-$PWD/target/release/rkube}" python3 conformance/run.py --backend both
