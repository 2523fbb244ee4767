#!/usr/bin/env bash
# install-deps.sh — installs the Debian 12 packages dojo needs to build and to
# run its tests, when they are missing. Safe to run again; needs root (or sudo)
# only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libuv1-dev libhttp-parser-dev libwslay-dev libjansson-dev
  libssl-dev libcurl4-openssl-dev libsqlite3-dev libpq-dev
  libcmocka-dev sqlite3 clang libclang-rt-14-dev clang-format
  postgresql postgresql-contrib
  nodejs npm
  chromium
  curl ca-certificates
  imagemagick
  systemd adduser
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from elsewhere than Debian (nodesource, nvm): accept any node >= 18.
if command -v node >/dev/null 2>&1 && node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)'; then
  missing=("${missing[@]/nodejs}")
  missing=("${missing[@]/npm}")
fi
want=()
for p in "${missing[@]}"; do [ -n "$p" ] && want+=("$p"); done

if [ ${#want[@]} -gt 0 ]; then
  echo "install-deps: installing ${want[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q "${want[@]}"
fi
