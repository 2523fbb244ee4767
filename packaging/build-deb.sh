#!/usr/bin/env bash
# build-deb.sh — builds the Debian package of dojo with dpkg-deb, offline:
#   packaging/build-deb.sh [--bin PATH] [--out DIR]
# --bin: the binary to package (default build/dojo, the optimised build of
# scripts/build.sh, built first when missing); --out: where the .deb goes
# (default build/deb). Prints the path of the package.
#
# The package: /usr/bin/dojo; its man page, generated from --help
# (gen-man.sh); the systemd unit dojo.service (dedicated user, StateDirectory,
# hardening, /etc/dojo/dojo.env); the environment file's template; and the
# maintainer scripts (postinst creates the user and, when none exists, an
# environment file with a random admin key). Its Depends are the Debian
# packages that provide the shared libraries the binary links, as dpkg knows
# them on this machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin="$root/build/dojo"
out="$root/build/deb"
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-deb.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ ! -x "$bin" ]; then
  echo "build-deb.sh: building $bin first" >&2
  (cd "$root" && scripts/build.sh >&2)
fi
if ldd "$bin" | grep -q 'libasan'; then
  echo "build-deb.sh: $bin is a sanitizer build; package the optimised one (scripts/build.sh)" >&2
  exit 2
fi

version=$("$bin" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
stage=$(mktemp -d "${TMPDIR:-/tmp}/dojo-deb-XXXXXX")
trap 'rm -rf "$stage"' EXIT
pkg="$stage/dojo_${version}_${arch}"

install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/usr/share/man/man1" "$pkg/lib/systemd/system" \
  "$pkg/usr/share/dojo" "$pkg/usr/share/doc/dojo"
install -m 0755 "$bin" "$pkg/usr/bin/dojo"
strip --strip-unneeded "$pkg/usr/bin/dojo" 2>/dev/null || true
"$here/gen-man.sh" "$pkg/usr/bin/dojo" | gzip -9n > "$pkg/usr/share/man/man1/dojo.1.gz"
chmod 0644 "$pkg/usr/share/man/man1/dojo.1.gz"
install -m 0644 "$here/dojo.service" "$pkg/lib/systemd/system/dojo.service"
install -m 0644 "$here/dojo.env.in" "$pkg/usr/share/dojo/dojo.env.in"
for script in postinst prerm postrm; do
  install -m 0755 "$here/$script" "$pkg/DEBIAN/$script"
done
cat > "$pkg/usr/share/doc/dojo/copyright" <<COPY
dojo — the realtime backend of Karate AI.
Copyright: Karate AI. Built from the dojo repository.
COPY
chmod 0644 "$pkg/usr/share/doc/dojo/copyright"

# Depends: the package of each shared library the binary links directly
# (its NEEDED entries), at least the installed version.
depends=()
while read -r lib; do
  owner=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null | head -1 | cut -d: -f1) || true
  [ -z "$owner" ] && owner=$(dpkg -S "$lib" 2>/dev/null | head -1 | cut -d: -f1) || true
  [ -z "$owner" ] && { echo "build-deb.sh: no package provides $lib" >&2; exit 1; }
  ver=$(dpkg-query -W -f='${Version}' "$owner")
  depends+=("$owner (>= ${ver%%-*})")
done < <(for soname in $(objdump -p "$bin" | awk '$1 == "NEEDED" {print $2}'); do
  ldd "$bin" | awk -v so="$soname" '$1 == so && $3 ~ /^\// {print $3}'
done | sort -u)
depends_text=$(printf '%s\n' "${depends[@]}" adduser | sort -u | paste -sd, - | sed 's/,/, /g')
size_kb=$(du -sk "$pkg" | cut -f1)

cat > "$pkg/DEBIAN/control" <<CONTROL
Package: dojo
Version: $version
Architecture: $arch
Maintainer: Karate AI <engineering@karate.ai>
Installed-Size: $size_kb
Depends: $depends_text
Section: net
Priority: optional
Homepage: https://karate.ai
Description: realtime backend of Karate AI (Convex wire protocol)
 One binary that stores users, workflows, generation runs and a credit
 ledger (SQLite or PostgreSQL), verifies Clerk JWTs, runs queries and
 mutations as serializable transactions, and pushes changes to clients over
 the Convex wire protocol. Installs the dojo.service systemd unit, run as
 the system user dojo with its state in /var/lib/dojo and its settings in
 /etc/dojo/dojo.env.
CONTROL

mkdir -p "$out"
deb="$out/dojo_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
