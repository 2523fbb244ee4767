#!/usr/bin/env bash
# test.sh — the one command that sets up and passes every test on a fresh
# Debian 12 machine: installs the packages and the npm dependencies, builds
# with warnings as errors (optimised, and with AddressSanitizer +
# UndefinedBehaviorSanitizer), then runs every suite — the C unit tests, and
# the end-to-end and browser (Chromium) tests against the sanitized binary —
# through ctest, which prints the summary. A throwaway PostgreSQL serves the
# PostgreSQL suites.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
BUILD_DIR=build-asan BUILD_TYPE=Debug scripts/build.sh -DDOJO_SANITIZE=ON \
  -DDOJO_RELEASE_BIN="$PWD/build/dojo"
(cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
# A throwaway PostgreSQL cluster (scripts/pg.sh) for the suites that run on
# PostgreSQL; they find it through DOJO_TEST_PG_URL. Stopped however we exit.
pg_env=$(scripts/pg.sh start)
eval "$pg_env"
trap 'scripts/pg.sh stop "$DOJO_TEST_PG_DIR"' EXIT
export DOJO_TEST_PG_URL
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ctest --test-dir build-asan --output-on-failure -j "$(nproc)" "$@"
