#!/usr/bin/env bash
# Quick start: builds pipework, then shows its main job on throwaway namespaces — no Docker
# needed, nothing on the machine's own interfaces is touched.
#   a private "host" namespace  pwq-host   (bridge br1 gets created there)
#   two guests                  pwq-web1, pwq-web2
# Everything is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "run as root (network namespaces need it)"; exit 1; }
command -v ip >/dev/null || { apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null; }
cargo build --release --quiet
PW=$PWD/target/release/pipework

cleanup() { for n in pwq-host pwq-web1 pwq-web2; do ip netns del "$n" 2>/dev/null || true; done; }
trap cleanup EXIT
cleanup
for n in pwq-host pwq-web1 pwq-web2; do ip netns add "$n"; done

# pipework runs in the "host" namespace; the guests are named namespaces.
in_host() { ip netns exec pwq-host "$@"; }

set -x
in_host "$PW" br1 pwq-web1 192.168.1.5/24@192.168.1.1
in_host "$PW" br1 pwq-web2 192.168.1.6/24 U:web2 --json
ip -n pwq-web1 -br addr show eth1
ip -n pwq-web2 -br link show eth1
ip -n pwq-web1 route
ip netns exec pwq-web1 ping -c 2 -W 1 192.168.1.6
{ set +x; } 2>/dev/null
