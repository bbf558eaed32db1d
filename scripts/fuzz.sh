#!/usr/bin/env bash
# libFuzzer targets of pipework's parsers (fuzz/), on stable Rust: cargo-fuzz's
# instrumentation flags (SanitizerCoverage, no sanitizer, as `cargo fuzz build -s none`) passed
# straight to rustc, so neither nightly nor the cargo-fuzz binary is needed.
#   scripts/fuzz.sh build                 build every target
#   scripts/fuzz.sh run TARGET SECONDS    fuzz one target; new inputs go to fuzz/corpus/TARGET
#   scripts/fuzz.sh smoke [SECONDS]       every target for SECONDS (default 15) each, from the
#                                         committed corpus, which is left unchanged
#   scripts/fuzz.sh minimise TARGET [DIR…] fuzz/corpus/TARGET (and DIRs) cut to the fewest
#                                         inputs that keep every edge (before a commit)
#   scripts/fuzz.sh list                  the targets
# Exit status non-zero on any crash, panic, failed assertion or timeout; the input is saved as
# fuzz/artifacts/TARGET/crash-… (reproduce: scripts/fuzz.sh repro TARGET FILE).
# Runs at nice 19, one process: it shares the machine.
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/../fuzz"

triple=$(rustc -vV | sed -n 's/^host: //p')
# Its own target dir: the flags differ from the main crate's, sharing would rebuild both.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$PWD/../target}/fuzz}"
bin_dir="$CARGO_TARGET_DIR/$triple/release"
targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^pipework-fuzz$')

# What `cargo fuzz build -s none` passes (plus --cfg fuzzing); --target keeps build scripts
# and proc macros uninstrumented.
flags="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters"
flags+=" -Cllvm-args=-sanitizer-coverage-pc-table"
flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares"

build() {
  RUSTFLAGS="$flags" nice -n 19 cargo build --locked --release --target "$triple" --bins
}

# libFuzzer options common to every run: a slow input (10 s) and a 2 GiB process are bugs.
# No -jobs/-workers: libFuzzer's default is this one process (-jobs=1 would fork a child that
# logs to fuzz-0.log instead).
lf_opts=(-timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1)

run() {
  local t=$1 secs=$2
  shift 2
  mkdir -p "corpus/$t" "artifacts/$t"
  nice -n 19 "$bin_dir/$t" "${lf_opts[@]}" -max_total_time="$secs" \
    -artifact_prefix="artifacts/$t/" "$@" "corpus/$t"
}

smoke() {
  local secs=${1:-15} failed=() t scratch
  build
  for t in $targets; do
    # New inputs go to a scratch dir: the committed corpus stays as it is (the first dir is
    # where libFuzzer writes).
    scratch=$(mktemp -d)
    echo "==> fuzz $t for ${secs}s"
    mkdir -p "corpus/$t" "artifacts/$t"
    if ! nice -n 19 "$bin_dir/$t" "${lf_opts[@]}" -max_total_time="$secs" \
      -artifact_prefix="artifacts/$t/" "$scratch" "corpus/$t" 2>"$scratch.log"; then
      tail -n 40 "$scratch.log"
      failed+=("$t")
    else
      grep -E '^(stat::number_of_executed_units|Done )' "$scratch.log" | sed 's/^/    /' || true
    fi
    rm -rf "$scratch" "$scratch.log"
  done
  if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz smoke: failed: ${failed[*]} (inputs in fuzz/artifacts/)"
    return 1
  fi
  echo "fuzz smoke: every target ran ${secs}s without a crash"
}

case "${1:-}" in
  build) build ;;
  list) echo "$targets" ;;
  run)
    [ $# -ge 3 ] || { echo "usage: $0 run TARGET SECONDS [libFuzzer options]" >&2; exit 2; }
    t=$2 secs=$3
    shift 3
    build
    run "$t" "$secs" "$@"
    ;;
  repro)
    [ $# -ge 3 ] || { echo "usage: $0 repro TARGET FILE…" >&2; exit 2; }
    t=$2
    shift 2
    build
    "$bin_dir/$t" "$@"
    ;;
  minimise)
    [ $# -ge 2 ] || { echo "usage: $0 minimise TARGET [DIR…]" >&2; exit 2; }
    t=$2
    shift 2
    build
    out=$(mktemp -d)
    # Named inputs (seed-…: hand-written; regress-…: a fixed finding) are kept as they are.
    cp -p "corpus/$t"/seed-* "corpus/$t"/regress-* "$out"/ 2>/dev/null || true
    # Edges only (no hit counts, no comparison operands) and inputs cut to 1 KiB: the corpus
    # stays a few hundred KiB for about all the coverage.
    nice -n 19 "$bin_dir/$t" -set_cover_merge=1 -use_counters=0 -use_cmp=0 -use_value_profile=0 \
      -max_len=1024 -timeout=10 "$out" "corpus/$t" "$@"
    rm -rf "corpus/$t"
    mv "$out" "corpus/$t"
    chmod 755 "corpus/$t"
    echo "corpus/$t: $(ls "corpus/$t" | wc -l) inputs, $(du -sk --apparent-size "corpus/$t" | cut -f1) KiB"
    ;;
  smoke) shift; smoke "$@" ;;
  *)
    sed -n '2,14p' "$self" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
