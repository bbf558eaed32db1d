#!/usr/bin/env bash
# Builds pipework's release binary, statically linked (glibc's libc.a): measured faster to start
# and smaller in memory than the dynamic one (scripts/bench.sh prints both), and it runs in any
# image (e.g. for `pipework --wait` inside a container). `--target` keeps the static flag away
# from the build's proc-macros; the binary lands in target/<host triple>/release/pipework, whose
# path is printed last. PIPEWORK_DYNAMIC=1 builds the ordinary dynamic binary instead.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${PIPEWORK_DYNAMIC:-0}" = 1 ]; then
  cargo build --release --bin pipework >&2
  echo "${CARGO_TARGET_DIR:-$PWD/target}/release/pipework"
  exit 0
fi
triple=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
  cargo build --release --target "$triple" --bin pipework >&2
echo "${CARGO_TARGET_DIR:-$PWD/target}/$triple/release/pipework"
