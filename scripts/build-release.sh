#!/usr/bin/env bash
# Old name of scripts/release.sh (the static release build and its artefact under
# target/release-artefacts/); kept so `install -m 0755 "$(scripts/build-release.sh)" ...` and
# PIPEWORK_DYNAMIC=1 go on working.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/release.sh" "$@"
