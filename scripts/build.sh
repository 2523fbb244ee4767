#!/usr/bin/env bash
# build.sh — builds dojo with warnings as errors. BUILD_DIR (default build) and
# extra CMake options may be given: scripts/build.sh -DDOJO_SANITIZE=ON
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${BUILD_DIR:-build}"
cmake -S . -B "$dir" -DDOJO_WERROR=ON -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
cmake --build "$dir" -j "$(nproc)"
