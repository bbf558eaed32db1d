#!/usr/bin/env bash
# The project's one test command (CI runs it through .ci/run). As root:
#   1. installs what the tests need and starts the private test dockerd (scripts/testenv.sh);
#   2. cargo fmt --check, cargo clippy -D warnings, the release artefacts (static binary, .deb),
#      cargo nextest run (unit + integration);
#   3. a short run of every fuzz target from its committed corpus (scripts/fuzz.sh smoke);
#   4. checks that no test namespace, link or container (prefix pwt-) was left behind.
# Every step runs even when an earlier one failed; the exit status is non-zero if any failed.
# Extra arguments go to `cargo nextest run` (e.g. `scripts/test.sh --test errors`).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "test.sh: must run as root (the integration tests create network namespaces)" >&2
  exit 1
fi

scripts/testenv.sh install
eval "$(scripts/testenv.sh env)"
export PIPEWORK_TEST_DOCKER_HOST PIPEWORK_TEST_IMAGE
# pipework's records and DHCP pidfiles of the test runs stay out of the host's /run/pipework
# (a test may set its own); removed at the end.
export PIPEWORK_RUNTIME_DIR=${PIPEWORK_RUNTIME_DIR:-/tmp/pipework-test-run.$$}
# Tests that cannot run here (a kernel feature or a component missing) pass after printing why;
# each appends its reason to this file, and the count is reported at the end.
export PIPEWORK_TEST_SKIPS=/tmp/pipework-test-skips.$$
rm -f "$PIPEWORK_TEST_SKIPS"

# Leave a daemon that was already running (someone else's session) as it was; stop the one we
# start.
started_docker=0
if ! docker -H "$PIPEWORK_TEST_DOCKER_HOST" version >/dev/null 2>&1; then
  started_docker=1
fi

leak_report=""
pwt_netns() { ip netns list 2>/dev/null | awk '{print $1}' | grep '^pwt-' | sort || true; }
pwt_links() { ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^pwt-' | sort || true; }
pwt_containers() {
  docker -H "$PIPEWORK_TEST_DOCKER_HOST" ps -a --filter name=pwt- --format '{{.Names}}' 2>/dev/null |
    grep '^pwt-' | sort || true
}

cleanup() {
  local rc=$?
  case "$PIPEWORK_RUNTIME_DIR" in /tmp/pipework-test-run.*) rm -rf "$PIPEWORK_RUNTIME_DIR" ;; esac
  if [ "$started_docker" = 1 ]; then
    scripts/testenv.sh down || true
  fi
  exit "$rc"
}
trap cleanup EXIT

scripts/testenv.sh up

netns_before=$(pwt_netns)
links_before=$(pwt_links)
containers_before=$(pwt_containers)

failed=()
run_step() {
  echo "==> $*"
  if ! "$@"; then
    echo "==> FAILED: $*"
    failed+=("$*")
  fi
}

run_step cargo fmt --all -- --check
run_step cargo fmt --manifest-path fuzz/Cargo.toml -- --check
run_step cargo clippy --all-targets --all-features -- -D warnings
# The release artefacts tests/package.rs installs, built once here rather than inside a test
# (a cold release build would outlast nextest's 2-minute limit).
artefacts() {
  local deb
  deb=$(scripts/package-deb.sh) || return 1
  export PIPEWORK_TEST_DEB="$deb"
  PIPEWORK_TEST_STATIC_BIN=$(scripts/release.sh) || return 1
  export PIPEWORK_TEST_STATIC_BIN
}
run_step artefacts
run_step cargo nextest run --features test-hooks --config-file tests/nextest.toml --no-fail-fast "$@"
# Every parser of outside input for PIPEWORK_FUZZ_SECONDS (default 15) each, 0 skips it; the
# long runs are `scripts/fuzz.sh run`, by hand.
if [ "${PIPEWORK_FUZZ_SECONDS:-15}" != 0 ]; then
  run_step scripts/fuzz.sh smoke "${PIPEWORK_FUZZ_SECONDS:-15}"
fi

if [ -s "$PIPEWORK_TEST_SKIPS" ]; then
  echo "==> $(wc -l <"$PIPEWORK_TEST_SKIPS") test(s) skipped here, with their reasons:"
  sort "$PIPEWORK_TEST_SKIPS" | sed 's/^/  /'
else
  echo "==> no test skipped"
fi
rm -f "$PIPEWORK_TEST_SKIPS"

# Leak check: whatever this run made and did not remove. It is reported as a failure, then
# removed so the machine is left clean.
new_only() { comm -13 <(echo "$1") <(echo "$2") | sed '/^$/d'; }
leaked_netns=$(new_only "$netns_before" "$(pwt_netns)")
leaked_links=$(new_only "$links_before" "$(pwt_links)")
leaked_containers=$(new_only "$containers_before" "$(pwt_containers)")
if [ -n "$leaked_netns$leaked_links$leaked_containers" ]; then
  echo "==> FAILED: the tests left things behind:"
  [ -n "$leaked_netns" ] && echo "  netns: $(echo $leaked_netns)"
  [ -n "$leaked_links" ] && echo "  links: $(echo $leaked_links)"
  [ -n "$leaked_containers" ] && echo "  containers: $(echo $leaked_containers)"
  for n in $leaked_netns; do ip netns del "$n" 2>/dev/null || true; done
  for l in $leaked_links; do ip link del "$l" 2>/dev/null || true; done
  for c in $leaked_containers; do
    docker -H "$PIPEWORK_TEST_DOCKER_HOST" rm -f "$c" >/dev/null 2>&1 || true
  done
  failed+=("leak check")
else
  echo "==> leak check: nothing left behind"
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "test.sh: ${#failed[@]} step(s) failed: ${failed[*]}"
  exit 1
fi
echo "test.sh: all steps passed"
