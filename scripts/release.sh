#!/usr/bin/env bash
# Builds pipework's release binary, statically linked against glibc (libc.a), and publishes it
# as a release artefact:
#   target/release-artefacts/pipework-<version>-x86_64-linux          (stripped, mode 0755)
#   target/release-artefacts/pipework-<version>-x86_64-linux.sha256   (`sha256sum -c` format)
# The artefact's path is the only line on stdout (the build's output goes to stderr), so
#   install -m 0755 "$(scripts/release.sh)" /usr/local/bin/pipework
# works. Static: measured faster to start and smaller in memory than the dynamic binary
# (scripts/bench.sh prints both), and it runs in any image (`pipework --wait` inside a
# container) with no libc there. `--target` keeps +crt-static away from the build's proc-macros;
# the unstripped binary stays in target/x86_64-unknown-linux-gnu/release/pipework.
#
#   PIPEWORK_DYNAMIC=1      build the ordinary dynamic binary instead and print its path (no
#                           artefact; what scripts/build-release.sh did with the same variable)
#   PIPEWORK_RELEASE_STRIP=0  keep the artefact's symbols
# scripts/build-release.sh is the old name of this script and runs it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac

if [ "${PIPEWORK_DYNAMIC:-0}" = 1 ]; then
  cargo build --release --bin pipework >&2
  echo "$TARGET_DIR/release/pipework"
  exit 0
fi

# The [package] version (the first `version = "..."` line of Cargo.toml).
version=$(sed -n 's/^version[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
if [ -z "$version" ]; then
  echo "release: no version in Cargo.toml" >&2
  exit 1
fi

triple=x86_64-unknown-linux-gnu
host=$(rustc -vV | sed -n 's/^host: //p')
if [ "$host" != "$triple" ]; then
  echo "release: builds $triple artefacts only (this host is $host)" >&2
  exit 1
fi

start=$(date +%s)
RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
  cargo build --release --target "$triple" --bin pipework >&2
built="$TARGET_DIR/$triple/release/pipework"

# Refuse to publish a binary that needs a dynamic loader.
if readelf -l "$built" 2>/dev/null | grep -q 'Requesting program interpreter'; then
  echo "release: $built is dynamically linked" >&2
  exit 1
fi
if command -v file >/dev/null; then
  case "$(file -b "$built")" in
    *static-pie\ linked* | *statically\ linked*) ;;
    *) echo "release: file(1) does not call $built static: $(file -b "$built")" >&2; exit 1 ;;
  esac
fi

out="$TARGET_DIR/release-artefacts"
name="pipework-$version-x86_64-linux"
mkdir -p "$out"
tmp=$(mktemp "$out/.$name.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cp "$built" "$tmp"
if [ "${PIPEWORK_RELEASE_STRIP:-1}" != 0 ] && command -v strip >/dev/null; then
  strip --strip-all --remove-section=.comment "$tmp"
fi
chmod 0755 "$tmp"
got=$("$tmp" --version)
if [ "$got" != "pipework $version" ]; then
  echo "release: the binary says '$got', Cargo.toml says $version" >&2
  exit 1
fi
mv -f "$tmp" "$out/$name"
trap - EXIT
(cd "$out" && sha256sum "$name" >"$name.sha256.tmp" && mv -f "$name.sha256.tmp" "$name.sha256")
echo "release: $out/$name ($(stat -c %s "$out/$name") bytes, built in $(($(date +%s) - start)) s)" >&2
echo "$out/$name"
