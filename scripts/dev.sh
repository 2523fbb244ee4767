#!/usr/bin/env bash
# dev.sh — sets up and starts `dojo dev` on a fresh Debian 12 machine:
# installs the packages, builds, and serves a local deployment from the
# folder you run it in (state in ./.dojo) on http://127.0.0.1:3210.
# Arguments are passed to `dojo dev` (e.g. --dev-auth).
set -euo pipefail
here="$(pwd)"
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install-deps.sh"
(cd "$root" && scripts/build.sh)
cd "$here"
exec "$root/build/dojo" dev "$@"
