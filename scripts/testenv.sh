#!/usr/bin/env bash
# Test environment for pipework's integration tests and benchmark.
#   scripts/testenv.sh install   apt-get what the tests need (idempotent)
#   scripts/testenv.sh up        start a private dockerd + import the busybox test image
#   scripts/testenv.sh down      stop it and remove everything it made
#   scripts/testenv.sh env       print the variables tests read (eval "$(scripts/testenv.sh env)")
# The daemon never touches the machine's firewall, forwarding or docker0: it gets its own bridge
# (pwtdk0) and --iptables=false. Its socket is $PIPEWORK_TEST_DIR/docker.sock.
# Overridable: PIPEWORK_TEST_DIR (/run/pipework-test), PIPEWORK_TEST_IMAGE,
# PIPEWORK_TEST_BRIDGE (pwtdk0), PIPEWORK_TEST_BRIDGE_ADDR (10.211.250.1/24).
set -euo pipefail

D=${PIPEWORK_TEST_DIR:-/run/pipework-test}
IMAGE=${PIPEWORK_TEST_IMAGE:-pipework-test/busybox:latest}
BR=${PIPEWORK_TEST_BRIDGE:-pwtdk0}
BR_ADDR=${PIPEWORK_TEST_BRIDGE_ADDR:-10.211.250.1/24}
SOCK="$D/docker.sock"
CONTAINERD_PID="$D/exec/containerd/containerd.pid"

# True when PROGRAM is on PATH or in an sbin directory (a non-root PATH may lack those).
have() { command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

install() {
  local need=()
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v docker >/dev/null || need+=(docker.io)
  [ -x /bin/busybox ] || command -v busybox >/dev/null || need+=(busybox-static)
  command -v ip >/dev/null || need+=(iproute2)
  command -v tc >/dev/null || need+=(iproute2)
  command -v unshare >/dev/null || need+=(util-linux)
  command -v nsenter >/dev/null || need+=(util-linux)
  command -v ping >/dev/null || need+=(iputils-ping)
  # Open vSwitch (tests/ovs.rs runs a private ovsdb-server/ovs-vswitchd per test with the
  # userspace datapath; the package's own service is not used) and ethtool (the OVS tests check
  # the guest end's TX checksum offload).
  have ovs-vsctl && have ovsdb-tool && have ovsdb-server && have ovs-vswitchd ||
    need+=(openvswitch-switch)
  have ethtool || need+=(ethtool)
  # DHCP (tests/dhcp.rs, tests/dhcp_external.rs): a private dnsmasq per test is the server
  # (dnsmasq-base: the binary only, no service), plus the external clients pipework can drive.
  # The tests never run a client with its distribution script (it would rewrite the host's
  # /etc/resolv.conf); pipework gives them its own.
  have dnsmasq || need+=(dnsmasq-base)
  have dhclient || need+=(isc-dhcp-client)
  have udhcpc || need+=(udhcpc)
  have dhcpcd || need+=(dhcpcd-base)
  # Renewal and rebinding tests drop some DHCP traffic inside their own host namespace:
  # iptables (renewals must be unicast) and tc's mirred redirect (rebinding at T2).
  have iptables || need+=(iptables)
  have tc || need+=(iproute2)
  # The hostile-guest tests (tests/guest_paths.rs) chroot a busybox tree (busybox above).
  have chroot || need+=(coreutils)
  # Container engines (tests/engines.rs): each test runs its own private instance (Podman
  # with `podman system service` on its own socket, LXC in its own -P directory, a standalone
  # containerd with its own root/state/socket); no package service is used. containerd and ctr
  # come with docker.io; the Podman tests use --network=none, the CNI plugins are for the
  # documented recipe.
  have podman || need+=(podman)
  [ -d /usr/lib/cni ] || need+=(containernetworking-plugins)
  have lxc-info && have lxc-create && have lxc-start || need+=(lxc)
  have ctr && have containerd || need+=(containerd)
  # The CNI plugin (tests/cni.rs): ipMasq and macspoofchk with the nftables backend, and
  # host-local (containernetworking-plugins, above) as the IPAM it delegates to.
  have nft || need+=(nftables)
  # The plugin driven by real runtimes (tests/cni_runtimes.rs): Podman's CNI backend with runc
  # (podman itself may pull in crun instead) and conmon, the reference bridge, portmap (which
  # needs iptables, above), host-local and loopback, and ctr run --cni with containerd's runc
  # shim. Each test runs its runtime privately in its own host netns and mount namespace.
  have runc || need+=(runc)
  have conmon || need+=(conmon)
  for p in bridge portmap host-local loopback; do
    [ -x "/usr/lib/cni/$p" ] || { need+=(containernetworking-plugins); break; }
  done
  have containerd-shim-runc-v2 || need+=(containerd)
  # The fuzz smoke (scripts/fuzz.sh): libfuzzer-sys compiles libFuzzer's C++ with cc.
  have g++ || need+=(g++)
  # Completions and man pages (tests/completions.rs): the real shells load the generated
  # scripts, man-db renders the pages. The release artefacts (tests/package.rs,
  # scripts/release.sh, scripts/package-deb.sh): readelf and strip (binutils), file(1).
  have zsh || need+=(zsh)
  have fish || need+=(fish)
  have man || need+=(man-db)
  have readelf && have strip || need+=(binutils)
  have file || need+=(file)
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

# True when PID runs program NAME and is not a zombie. PID 1 here is not an init: a dead
# daemon can linger as a zombie, and `kill -0` alone would still succeed.
alive() {
  local pid=$1 name=$2
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
  ! grep -qs '^State:[[:space:]]*[ZX]' "/proc/$pid/status"
}

# Stops the process named in pidfile FILE if it is a live NAME: TERM, then KILL after ~5 s.
stop_pidfile() {
  local file=$1 name=$2 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file" 2>/dev/null || true)
  if alive "$pid" "$name"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      alive "$pid" "$name" || break
      sleep 0.05
    done
    alive "$pid" "$name" && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

up() {
  mkdir -p "$D"
  if [ -S "$SOCK" ] && docker_ version >/dev/null 2>&1; then
    echo "testenv: dockerd already running at $SOCK"
  else
    # Leftovers of an earlier daemon that is no longer answering (killed, or its session
    # ended): a stale pidfile makes dockerd refuse to start, an orphaned containerd holds its
    # socket.
    stop_pidfile "$D/docker.pid" dockerd
    stop_pidfile "$CONTAINERD_PID" containerd
    ip link show "$BR" >/dev/null 2>&1 || {
      ip link add "$BR" type bridge
      ip addr add "$BR_ADDR" dev "$BR"
    }
    echo '{}' > "$D/daemon.json"
    dockerd --config-file "$D/daemon.json" --data-root "$D/data" --exec-root "$D/exec" \
      --pidfile "$D/docker.pid" -H "unix://$SOCK" --bridge="$BR" \
      --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
      >"$D/dockerd.log" 2>&1 &
    for _ in $(seq 1 300); do
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
    # Bounded: a daemon that hangs (it has happened under load) must not hang the teardown;
    # stopping it below ends its containers anyway.
    ids=$(timeout 20 docker -H "unix://$SOCK" ps -aq 2>/dev/null || true)
    [ -n "$ids" ] && timeout 60 docker -H "unix://$SOCK" rm -f $ids >/dev/null 2>&1 || true
  fi
  # dockerd stops the containerd it started; stop a containerd left orphaned as well.
  stop_pidfile "$D/docker.pid" dockerd
  stop_pidfile "$CONTAINERD_PID" containerd
  # containerd-shims of this daemon's containers normally exit with them; end any that are
  # left, by PID, and only those whose command line names this test directory.
  local p cmd
  for p in /proc/[0-9]*; do
    cmd=$( { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null || true)
    case "$cmd" in
      *containerd-shim*" "*"$D/"*) kill "${p#/proc/}" 2>/dev/null || true ;;
    esac
  done
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
