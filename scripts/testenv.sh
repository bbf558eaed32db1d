#!/usr/bin/env bash
# Test environment for pipework's integration tests and benchmark.
#   scripts/testenv.sh install   apt-get what the tests need (idempotent)
#   scripts/testenv.sh up        start a private dockerd + import the busybox test image
#   scripts/testenv.sh down      stop it and remove everything it made
#   scripts/testenv.sh env       print the variables tests read (eval "$(scripts/testenv.sh env)")
# The daemon never touches the machine's firewall, forwarding or docker0: it gets its own bridge
# (pwtdk0) and --iptables=false. Its socket is $PIPEWORK_TEST_DIR/docker.sock.
set -euo pipefail

D=${PIPEWORK_TEST_DIR:-/run/pipework-test}
IMAGE=${PIPEWORK_TEST_IMAGE:-pipework-test/busybox:latest}
BR=pwtdk0
SOCK="$D/docker.sock"

install() {
  local need=()
  command -v dockerd >/dev/null || need+=(docker.io)
  [ -x /bin/busybox ] || command -v busybox >/dev/null || need+=(busybox-static)
  command -v ip >/dev/null || need+=(iproute2)
  command -v tc >/dev/null || need+=(iproute2)
  command -v unshare >/dev/null || need+=(util-linux)
  if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  if ! command -v cargo-nextest >/dev/null && ! cargo nextest --version >/dev/null 2>&1; then
    cargo install --locked cargo-nextest
  fi
}

docker_() { docker -H "unix://$SOCK" "$@"; }

up() {
  mkdir -p "$D"
  if [ -S "$SOCK" ] && docker_ version >/dev/null 2>&1; then
    echo "testenv: dockerd already running at $SOCK"
  else
    ip link show "$BR" >/dev/null 2>&1 || {
      ip link add "$BR" type bridge
      ip addr add 10.211.250.1/24 dev "$BR"
    }
    echo '{}' > "$D/daemon.json"
    dockerd --config-file "$D/daemon.json" --data-root "$D/data" --exec-root "$D/exec" \
      --pidfile "$D/docker.pid" -H "unix://$SOCK" --bridge="$BR" \
      --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
      >"$D/dockerd.log" 2>&1 &
    for _ in $(seq 1 200); do
      docker_ version >/dev/null 2>&1 && break
      sleep 0.05
    done
    docker_ version >/dev/null 2>&1 || { echo "testenv: dockerd did not start:"; tail -20 "$D/dockerd.log"; exit 1; }
  fi
  if ! docker_ image inspect "$IMAGE" >/dev/null 2>&1; then
    local root
    root=$(mktemp -d)
    mkdir -p "$root/bin"
    cp "$(command -v busybox)" "$root/bin/busybox"
    for a in $("$root/bin/busybox" --list); do
      [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"
    done
    tar -C "$root" -c . | docker_ import - "$IMAGE" >/dev/null
    rm -rf "$root"
  fi
  echo "testenv: dockerd ready at $SOCK, image $IMAGE"
}

down() {
  if [ -S "$SOCK" ]; then
    ids=$(docker_ ps -aq 2>/dev/null || true)
    [ -n "$ids" ] && docker_ rm -f $ids >/dev/null 2>&1 || true
  fi
  if [ -f "$D/docker.pid" ]; then
    kill "$(cat "$D/docker.pid")" 2>/dev/null || true
    for _ in $(seq 1 100); do
      [ -S "$SOCK" ] || break
      sleep 0.05
    done
  fi
  # containerd-shims started by this daemon
  pkill -f "containerd-shim.*$D" 2>/dev/null || true
  ip link del "$BR" 2>/dev/null || true
  # data-root holds overlay mounts: unmount before removing
  grep " $D/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$D"
}

envvars() {
  echo "export PIPEWORK_TEST_DOCKER_HOST=unix://$SOCK"
  echo "export PIPEWORK_TEST_IMAGE=$IMAGE"
}

case "${1:-}" in
  install) install ;;
  up) up ;;
  down) down ;;
  env) envvars ;;
  *) echo "usage: $0 install|up|down|env" >&2; exit 2 ;;
esac
