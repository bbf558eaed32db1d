#!/usr/bin/env bash
# Builds the Debian package of pipework in one command:
#   scripts/package-deb.sh     → target/debian/pipework_<version>_amd64.deb (its path: last line
#                                of stdout; progress on stderr)
# Contents: the static release binary (scripts/release.sh) as /usr/bin/pipework; `pipework`
# symlinks in /usr/lib/cni and /opt/cni/bin for CNI runtimes (the binary is a CNI plugin when
# CNI_COMMAND is set); man pages made by `pipework man DIR`; bash, zsh and fish completions made
# by `pipework completions SHELL`; the systemd unit pipework-watch.service (shipped, never
# enabled: no maintainer scripts at all); tmpfiles.d for /run/pipework; copyright, changelog.
# Sources under packaging/. Staged in a private directory and built with
# `dpkg-deb --root-owner-group`: cargo-deb would need [package.metadata.deb] in Cargo.toml, and
# the man pages and completions have to come from the built binary anyway.
#   PIPEWORK_DEB_BINARY=PATH     package this static binary instead of running scripts/release.sh
#   PIPEWORK_DEB_MAINTAINER=...  the Maintainer field ("Name <address>")
#   PIPEWORK_DEB_LINTIAN=0       do not run lintian even when it is installed
# Built-Using names the glibc source whose libc.a is linked in (LGPL: its source must stay
# available).
#   SOURCE_DATE_EPOCH            timestamps (default: the last commit's time): reproducible builds
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
PKG="$ROOT/packaging"
umask 022

for tool in dpkg-deb gzip md5sum; do
  command -v "$tool" >/dev/null || { echo "package-deb: needs $tool" >&2; exit 1; }
done

version=$(sed -n 's/^version[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || { echo "package-deb: no version in Cargo.toml" >&2; exit 1; }
# Cargo's pre-release separator is Debian's "sorts before" marker: 1.0.0-rc.1 → 1.0.0~rc.1.
debversion=${version//-/\~}
arch=amd64
maintainer=${PIPEWORK_DEB_MAINTAINER:-pipework maintainers <pipework@users.noreply.github.com>}
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

start=$(date +%s)
if [ -n "${PIPEWORK_DEB_BINARY:-}" ]; then
  bin=$PIPEWORK_DEB_BINARY
else
  bin=$("$ROOT/scripts/release.sh" | tail -n 1)
fi
[ -x "$bin" ] || { echo "package-deb: no binary at $bin" >&2; exit 1; }
got=$("$bin" --version)
[ "$got" = "pipework $version" ] || {
  echo "package-deb: $bin says '$got', Cargo.toml says $version" >&2
  exit 1
}

out="$TARGET_DIR/debian"
mkdir -p "$out"
stage=$(mktemp -d "$out/stage.XXXXXX")
tmpdeb=$(mktemp "$out/.pipework.XXXXXX.deb")
trap 'rm -rf "$stage" "$tmpdeb"' EXIT
chmod 0755 "$stage"

# The binary and the CNI plugin entries (relative symlink within /usr, absolute across).
install -D -m 0755 "$bin" "$stage/usr/bin/pipework"
install -d -m 0755 "$stage/usr/lib/cni" "$stage/opt/cni/bin"
ln -s ../../bin/pipework "$stage/usr/lib/cni/pipework"
ln -s /usr/bin/pipework "$stage/opt/cni/bin/pipework"

# Man pages, from the binary itself.
man1="$stage/usr/share/man/man1"
install -d -m 0755 "$man1"
"$bin" man "$man1" >&2
[ -f "$man1/pipework.1" ] || { echo "package-deb: \`pipework man\` wrote no pipework.1" >&2; exit 1; }
for page in "$man1"/*; do
  chmod 0644 "$page"
  gzip -9 -n "$page"
done

# Shell completions, from the binary itself.
comp() { # SHELL DEST
  install -d -m 0755 "$(dirname "$2")"
  "$bin" completions "$1" >"$2"
  [ -s "$2" ] || { echo "package-deb: empty $1 completion" >&2; exit 1; }
  chmod 0644 "$2"
}
comp bash "$stage/usr/share/bash-completion/completions/pipework"
comp zsh "$stage/usr/share/zsh/vendor-completions/_pipework"
comp fish "$stage/usr/share/fish/vendor_completions.d/pipework.fish"

# systemd unit (not enabled) and the runtime directory.
install -D -m 0644 "$PKG/systemd/pipework-watch.service" \
  "$stage/lib/systemd/system/pipework-watch.service"
install -D -m 0644 "$PKG/tmpfiles.d/pipework.conf" "$stage/usr/lib/tmpfiles.d/pipework.conf"

# Documentation: copyright, changelog (a native package: changelog.gz), lintian overrides.
doc="$stage/usr/share/doc/pipework"
install -D -m 0644 "$PKG/debian/copyright" "$doc/copyright"
date_rfc=$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")
{
  printf 'pipework (%s) unstable; urgency=medium\n\n' "$debversion"
  printf '  * Release %s (static x86_64 binary); see the project history for the\n' "$version"
  printf '    changes.\n\n'
  printf ' -- %s  %s\n' "$maintainer" "$date_rfc"
} >"$doc/changelog"
gzip -9 -n "$doc/changelog"
install -D -m 0644 "$PKG/debian/lintian-overrides" "$stage/usr/share/lintian/overrides/pipework"

# Every file and directory of the tree at SOURCE_DATE_EPOCH (symlinks too, with -h).
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# Control files.
install -d -m 0755 "$stage/DEBIAN"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
  xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
installed_size=$(du -s -k --apparent-size --exclude=DEBIAN "$stage" | cut -f1)
built_using=""
if command -v dpkg-query >/dev/null; then
  glibc=$(dpkg-query -W -f='${source:Package} (= ${source:Version})' libc6-dev 2>/dev/null || true)
  if [ -n "$glibc" ]; then built_using="Built-Using: $glibc"; fi
fi
{
  printf 'Package: pipework\n'
  printf 'Version: %s\n' "$debversion"
  printf 'Architecture: %s\n' "$arch"
  printf 'Maintainer: %s\n' "$maintainer"
  printf 'Installed-Size: %s\n' "$installed_size"
  printf 'Recommends: iproute2\n'
  if [ -n "$built_using" ]; then printf '%s\n' "$built_using"; fi
  printf 'Section: net\n'
  printf 'Priority: optional\n'
  printf 'Homepage: https://github.com/jpetazzo/pipework\n'
  printf 'Description: '
  cat "$PKG/debian/description"
} >"$stage/DEBIAN/control"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/md5sums"
touch -d "@$SOURCE_DATE_EPOCH" "$stage/DEBIAN" "$stage/DEBIAN/control" "$stage/DEBIAN/md5sums"

deb="$out/pipework_${debversion}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$tmpdeb" >&2
chmod 0644 "$tmpdeb"
mv -f "$tmpdeb" "$deb"

if [ "${PIPEWORK_DEB_LINTIAN:-1}" != 0 ] && command -v lintian >/dev/null; then
  echo "package-deb: lintian $deb" >&2
  lintian --info --display-info "$deb" >&2 || {
    echo "package-deb: lintian found errors" >&2
    exit 1
  }
fi
echo "package-deb: $deb ($(stat -c %s "$deb") bytes, $installed_size KiB installed, $(($(date +%s) - start)) s)" >&2
echo "$deb"
