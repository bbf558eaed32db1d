#!/usr/bin/env bash
# Attach benchmark (benches/attach.rs), then the CNI benchmark (benches/cni.rs), then the topology
# benchmark (benches/topology.rs), then the multi-host one (benches/stretch.rs). Run as root.
#   scripts/bench.sh                      N=200 guests (PIPEWORK_BENCH_N), Docker rows with min(N,50)
#   PIPEWORK_BENCH_DOCKER_N=200           containers of the Docker rows (their targets are for 200 guests)
#   PIPEWORK_BENCH_N=50 scripts/bench.sh  smaller run
#   PIPEWORK_BENCH_OVS_N=20               guests of the Open vSwitch row (default min(N,50))
#   PIPEWORK_BENCH_DHCP_N=20              fresh guests per time-to-lease row (default 20, max 60, 0 skips)
#   PIPEWORK_BENCH_ONLY=dhcp              only the time-to-lease section (no static build, no Docker)
#   PIPEWORK_BENCH_ONLY=cni               only the CNI bench: ADD/DEL beside the reference bridge +
#                                         host-local, and the parallel burst (no Docker)
#   PIPEWORK_BENCH_CNI_N=20,200           guests per CNI section (each N its own ADD and DEL tables)
#   PIPEWORK_BENCH_CNI_MASQ=0             skip the CNI ipMasq sections
#   PIPEWORK_BENCH_ONLY=topology          only the topology bench: lab apply/plan/destroy beside N pipework
#                                         attaches and iproute2 (no Docker)
#   PIPEWORK_BENCH_TOPO_N=1000            guests of the topology bench's lab (its targets are for 1000)
#   PIPEWORK_BENCH_TOPO_REPS=5            runs of its cheap rows (plan, no-op apply, one changed address)
#   PIPEWORK_BENCH_ONLY=stretch           only the multi-host bench: a lab stretched over 3 simulated hosts
#                                         beside a one-host lab, and TCP across the VXLAN (no Docker)
#   PIPEWORK_BENCH_STRETCH_N=300          guests per host (its target is for 300)
#   PIPEWORK_BENCH_STRETCH_IPV6=0         IPv6 off in the bench's namespaces (shows what its chatter costs)
#   PIPEWORK_BENCH_STRETCH_SECS=3         seconds of each throughput stream (0 skips them)
#   PIPEWORK_BENCH_CNI_BURST=20 PIPEWORK_BENCH_CNI_ROUNDS=3   the parallel burst's size and rounds
#   PIPEWORK_BENCH_STATIC=0               skip the static-binary build and the "ns path A/B" rows
#   PIPEWORK_BENCH_STATIC_BIN=PATH        use this binary as the static one (no build)
# Builds the release binary, starts the private Docker test daemon (scripts/testenv.sh) if it is
# not already running -- and stops it again on exit only if this script started it -- then runs
# `cargo bench --bench attach`, `cargo bench --bench cni`, `cargo bench --bench topology` and
# `cargo bench --bench stretch`. Extra arguments are passed to the attach bench binary (to the
# CNI, topology or stretch one with PIPEWORK_BENCH_ONLY=cni, topology or stretch).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# pipework's records of the bench's attaches stay out of the host's /run/pipework.
export PIPEWORK_RUNTIME_DIR=${PIPEWORK_RUNTIME_DIR:-$(mktemp -d /tmp/pwb-run.XXXXXX)}
trap_runtime() { case "$PIPEWORK_RUNTIME_DIR" in /tmp/pwb-run.*) rm -rf "$PIPEWORK_RUNTIME_DIR" ;; esac; }
TESTENV="$ROOT/scripts/testenv.sh"

if [ "$(id -u)" -ne 0 ]; then
  echo "bench: needs root (network namespaces, veth, bridges)" >&2
  exit 1
fi

echo "bench: cargo build --release"
cargo build --release --bin pipework

# A/B rows: the same release binary linked statically (glibc's libc.a), built into its own
# target triple directory so the default build above stays as it is. Only RUSTFLAGS on the
# command line: Cargo.toml and .cargo/config are not changed. A failed build skips the rows.
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
ONLY=${PIPEWORK_BENCH_ONLY:-}
if [ -z "${PIPEWORK_BENCH_STATIC_BIN:-}" ] && [ "${PIPEWORK_BENCH_STATIC:-1}" != 0 ] && [ "$ONLY" != dhcp ]; then
  triple=x86_64-unknown-linux-gnu
  echo "bench: cargo build --release --target $triple (RUSTFLAGS=-C target-feature=+crt-static)"
  if RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
      cargo build --release --target "$triple" --bin pipework; then
    export PIPEWORK_BENCH_STATIC_BIN="$TARGET_DIR/$triple/release/pipework"
    # The static binary is what scripts/build-release.sh installs: the main rows measure it
    # (the A/B rows still compare it with the dynamic one, guest by guest).
    export PIPEWORK_BIN=${PIPEWORK_BIN:-$PIPEWORK_BENCH_STATIC_BIN}
  else
    echo "bench: warning: static build failed; the ns path A/B rows are skipped" >&2
  fi
fi

# Docker test daemon: reuse a running one, else start it (and stop it when done).
eval "$("$TESTENV" env)"
export PIPEWORK_TEST_DOCKER_HOST PIPEWORK_TEST_IMAGE
started_env=0
cleanup() {
  trap_runtime
  if [ "$started_env" = 1 ]; then
    echo "bench: stopping the test environment it started"
    "$TESTENV" down || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# With a timeout: a daemon that stopped answering must not hang the bench (its rows are skipped).
docker_up() { timeout -k 5 10 docker -H "$PIPEWORK_TEST_DOCKER_HOST" version >/dev/null 2>&1; }
# A test dockerd whose pidfile names a live process but which does not answer is someone
# else's too (the daemon is shared): never restart or stop it from here; the bench skips its
# Docker rows with the reason.
TEST_DIR=${PIPEWORK_TEST_DIR:-/run/pipework-test}
daemon_pid=$(cat "$TEST_DIR/docker.pid" 2>/dev/null || true)
daemon_alive() { [ -n "$daemon_pid" ] && [ "$(cat "/proc/$daemon_pid/comm" 2>/dev/null)" = dockerd ]; }
if [ "$ONLY" = dhcp ] || [ "$ONLY" = cni ] || [ "$ONLY" = topology ] || [ "$ONLY" = stretch ]; then
  echo "bench: PIPEWORK_BENCH_ONLY=$ONLY: the Docker test daemon is not needed"
elif command -v docker >/dev/null && docker_up; then
  echo "bench: test dockerd already running at $PIPEWORK_TEST_DOCKER_HOST"
  # make sure the image is there (idempotent, no daemon restart)
  "$TESTENV" up >/dev/null || echo "bench: warning: testenv up failed; the Docker row may be skipped" >&2
elif daemon_alive; then
  echo "bench: warning: the test dockerd (pid $daemon_pid) is running but does not answer within 10 s;" \
    "not restarting it (it is shared); the Docker rows will be skipped" >&2
else
  echo "bench: starting the test environment"
  "$TESTENV" install || echo "bench: warning: testenv install failed; trying up anyway" >&2
  started_env=1
  if ! "$TESTENV" up; then
    echo "bench: warning: testenv up failed; the Docker row will be skipped" >&2
  fi
fi

# Open vSwitch row: the bench starts its own ovsdb-server/ovs-vswitchd (userspace datapath) inside
# a private netns; it only needs the programs. (The package's service is not started: no systemd,
# and policy-rc.d forbids it.) Without them the row is skipped with the reason.
# Time-to-lease section: dnsmasq (server, started by the bench in a private netns), udhcpc and
# dhclient (the clients compared with the built-in one; run with a no-op script of the bench's own,
# never the distribution scripts that rewrite /etc/resolv.conf). Missing ones skip their row.
# (The bench also looks in /usr/sbin and /sbin for these three.)
has() { command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
pkgs=()
ovs_missing=0
for p in ovsdb-tool ovsdb-server ovs-vswitchd ovs-vsctl; do
  command -v "$p" >/dev/null || ovs_missing=1
done
[ -f /usr/share/openvswitch/vswitch.ovsschema ] || ovs_missing=1
if [ "$ONLY" != cni ] && [ "$ONLY" != topology ] && [ "$ONLY" != stretch ]; then
  if [ "$ovs_missing" = 1 ] && [ "$ONLY" != dhcp ]; then pkgs+=(openvswitch-switch); fi
  has dnsmasq || pkgs+=(dnsmasq-base)
  has udhcpc || pkgs+=(udhcpc)
  has dhclient || pkgs+=(isc-dhcp-client)
fi
# CNI bench: the reference plugins it compares with, and iptables for its ipMasq sections. (The
# topology and stretch benches need only iproute2.)
if [ "$ONLY" != dhcp ] && [ "$ONLY" != topology ] && [ "$ONLY" != stretch ]; then
  [ -x "${PIPEWORK_BENCH_CNI_REF_DIR:-/usr/lib/cni}/bridge" ] || pkgs+=(containernetworking-plugins)
  has iptables || pkgs+=(iptables)
fi
if [ "${#pkgs[@]}" -gt 0 ]; then
  echo "bench: installing ${pkgs[*]} (for the ovs row / the time-to-lease section / the CNI bench)"
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null; }; then
    echo "bench: warning: could not install ${pkgs[*]}; the rows that need them will be skipped" >&2
  fi
fi

# The bench finds target/release/pipework itself; be explicit in case CARGO_TARGET_DIR is set.
export PIPEWORK_BIN="${PIPEWORK_BIN:-$TARGET_DIR/release/pipework}"
case "$PIPEWORK_BIN" in /*) ;; *) PIPEWORK_BIN="$ROOT/$PIPEWORK_BIN" ;; esac

# Not exec: the EXIT trap must run afterwards. The CNI bench runs after the attach bench, the
# topology bench after the CNI bench (never two at once: they would slow each other down), each
# even if the one before failed.
status=0
if [ "$ONLY" = cni ]; then
  cargo bench --bench cni -- "$@" || status=$?
elif [ "$ONLY" = topology ]; then
  cargo bench --bench topology -- "$@" || status=$?
elif [ "$ONLY" = stretch ]; then
  cargo bench --bench stretch -- "$@" || status=$?
else
  cargo bench --bench attach -- "$@" || status=$?
  if [ -z "$ONLY" ]; then
    cargo bench --bench cni || status=$?
    cargo bench --bench topology || status=$?
    cargo bench --bench stretch || status=$?
  fi
fi
exit "$status"
