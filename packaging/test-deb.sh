#!/usr/bin/env bash
# test-deb.sh — the package check (ctest package.deb): builds the .deb with
# build-deb.sh, installs it with `apt-get install ./dojo_….deb`, has
# `systemd-analyze verify` check the installed unit, and proves the
# installed binary serves as the service would run it:
#  - where systemd is PID 1: `systemctl start dojo`, then GET /health;
#  - otherwise (a container whose PID 1 is not systemd, as in this project's
#    sandbox and CI): the unit's own command line and EnvironmentFile, run as
#    the service user `dojo` in /var/lib/dojo (setpriv), on a free port.
# Then it purges the package and removes what the test made. Needs root and
# apt; exits 77 (ctest: skipped) without them, or when a dojo package is
# already installed (an operator's, not to be touched). One run at a time on
# a machine (flock): dpkg is machine-wide.
#   packaging/test-deb.sh [--bin PATH]   (default: build/dojo)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin="$root/build/dojo"
[ "${1:-}" = "--bin" ] && bin=$2
SKIP=77

say() { echo "test-deb: $*"; }
fail() { echo "test-deb: FAILED: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || { say "skipped: needs root (apt-get install)"; exit $SKIP; }
command -v apt-get >/dev/null || { say "skipped: no apt-get"; exit $SKIP; }

exec 9>/var/lock/dojo-package-test.lock
flock -w 600 9 || fail "another package test holds /var/lock/dojo-package-test.lock"

if dpkg-query -W -f='${Status}' dojo 2>/dev/null | grep -q 'install ok installed'; then
  say "skipped: a dojo package is installed on this machine already; not touching it"
  exit $SKIP
fi
user_existed=no
getent passwd dojo >/dev/null && user_existed=yes
state_existed=no
[ -e /var/lib/dojo ] && state_existed=yes

work=$(mktemp -d "${TMPDIR:-/tmp}/dojo-deb-test-XXXXXX")
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  if dpkg-query -W -f='${Status}' dojo 2>/dev/null | grep -q installed; then
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -q dojo >/dev/null 2>&1 || dpkg --purge dojo >/dev/null 2>&1 || true
  fi
  [ "$state_existed" = no ] && rm -rf /var/lib/dojo
  [ "$user_existed" = no ] && getent passwd dojo >/dev/null && { userdel dojo 2>/dev/null || true; }
  getent group dojo >/dev/null && [ "$user_existed" = no ] && { groupdel dojo 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT

# 1. Build.
deb=$("$here/build-deb.sh" --bin "$bin" --out "$work")
say "built $deb"
contents=$(dpkg-deb --contents "$deb")
for f in ./usr/bin/dojo ./usr/share/man/man1/dojo.1.gz ./lib/systemd/system/dojo.service ./usr/share/dojo/dojo.env.in; do
  grep -q " $f\$" <<<"$contents" || fail "the package lacks $f"
done
man_page=$(dpkg-deb --fsys-tarfile "$deb" | tar xO ./usr/share/man/man1/dojo.1.gz | gzip -dc)
grep -q '^\.TH DOJO 1' <<<"$man_page" || fail "the man page has no .TH header"
for c in serve backup restore export verify; do
  grep -q "^\.SS dojo $c\$" <<<"$man_page" || fail "the man page has no section for dojo $c"
done
grep -q -- '--backup-every' <<<"$man_page" || fail "the man page does not carry serve's --help"

# 2. Install, as an operator would.
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$deb" >"$work/apt.log" 2>&1 ||
  { cat "$work/apt.log" >&2; fail "apt-get install $deb"; }
say "installed with apt-get install"
[ -x /usr/bin/dojo ] || fail "/usr/bin/dojo is missing"
getent passwd dojo >/dev/null || fail "postinst did not create the user dojo"
[ "$(getent passwd dojo | cut -d: -f7)" = /usr/sbin/nologin ] || fail "the user dojo can log in"
[ "$(stat -c '%U:%G %a' /etc/dojo/dojo.env)" = "root:dojo 640" ] || fail "/etc/dojo/dojo.env is $(stat -c '%U:%G %a' /etc/dojo/dojo.env)"
key=$(sed -n 's/^DOJO_ADMIN_KEY=//p' /etc/dojo/dojo.env)
[ ${#key} -eq 64 ] || fail "postinst wrote no 64-hex-digit admin key"
[ "$(stat -c '%U %a' /var/lib/dojo)" = "dojo 750" ] || fail "/var/lib/dojo is $(stat -c '%U %a' /var/lib/dojo)"
man -w dojo >/dev/null 2>&1 || [ -f /usr/share/man/man1/dojo.1.gz ] || fail "no man page"

# Reinstalling keeps the key.
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall "$deb" >"$work/apt2.log" 2>&1 ||
  { cat "$work/apt2.log" >&2; fail "apt-get install --reinstall"; }
[ "$(sed -n 's/^DOJO_ADMIN_KEY=//p' /etc/dojo/dojo.env)" = "$key" ] || fail "a reinstall replaced the admin key"

# 3. The unit.
unit=/lib/systemd/system/dojo.service
systemd-analyze verify "$unit" >"$work/verify.log" 2>&1 || { cat "$work/verify.log" >&2; fail "systemd-analyze verify $unit"; }
if grep -v '^$' "$work/verify.log" | grep -q .; then
  cat "$work/verify.log" >&2
  fail "systemd-analyze verify $unit printed warnings"
fi
say "systemd-analyze verify accepts $unit"
systemd-analyze security --offline=true --threshold=20 "$unit" >"$work/security.log" 2>&1 ||
  { tail -40 "$work/security.log" >&2; fail "systemd-analyze security rates $unit above 2.0 (of 10)"; }
say "systemd-analyze security: $(grep -o 'Overall exposure level.*' "$work/security.log")"
for want in 'User=dojo' 'StateDirectory=dojo' 'ProtectSystem=strict' 'NoNewPrivileges=yes' 'PrivateTmp=yes' \
  'SystemCallFilter=@system-service' 'EnvironmentFile=/etc/dojo/dojo.env'; do
  grep -qx "$want" "$unit" || fail "the unit lacks $want"
done

# 4. It serves.
health() { curl -sf --max-time 2 "http://$1/health" >/dev/null; }
if [ -d /run/systemd/system ] && [ "$(ps -p 1 -o comm=)" = systemd ]; then
  systemctl restart dojo.service
  listen=$(sed -n 's/^DOJO_LISTEN=//p' /etc/dojo/dojo.env)
  for _ in $(seq 1 100); do health "$listen" && break; sleep 0.1; done
  health "$listen" || { systemctl status dojo.service >&2 || true; fail "dojo.service does not answer /health"; }
  say "systemctl start dojo: /health answers on $listen"
  systemctl stop dojo.service
else
  say "systemd is not PID 1 here ($(ps -p 1 -o comm=)): running the unit's command as the user dojo"
  # The unit's ExecStart with its EnvironmentFile, on a free port instead of 3210.
  # systemd's EnvironmentFile syntax: NAME=the rest of the line, taken as it is.
  while IFS= read -r line; do
    case "$line" in '' | '#'*) continue ;; esac
    export "${line%%=*}=${line#*=}"
  done </etc/dojo/dojo.env
  DOJO_LISTEN=127.0.0.1:0
  exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
  [ "$exec_start" = '/usr/bin/dojo serve --listen ${DOJO_LISTEN} $DOJO_OPTIONS' ] || fail "unexpected ExecStart: $exec_start"
  cd /var/lib/dojo
  # shellcheck disable=SC2086
  setpriv --reuid dojo --regid dojo --init-groups --no-new-privs \
    /usr/bin/dojo serve --listen "$DOJO_LISTEN" $DOJO_OPTIONS >"$work/serve.log" 2>&1 &
  server_pid=$!
  cd "$root"
  url=
  for _ in $(seq 1 100); do
    url=$(grep -o 'listening on http://[0-9.]*:[0-9]*' "$work/serve.log" | head -1 | cut -d' ' -f3) || true
    [ -n "$url" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.log" >&2; fail "dojo serve exited"; }
    sleep 0.1
  done
  [ -n "$url" ] || { cat "$work/serve.log" >&2; fail "dojo serve did not start"; }
  health "${url#http://}" || fail "/health does not answer"
  answer=$(curl -sf --max-time 5 "$url/api/function" -H "Authorization: Convex $key" \
    -H 'Content-Type: application/json' -d '{"path":"admin:verifyLedger","args":{},"format":"json"}')
  grep -q '"status":"success"' <<<"$answer" || fail "admin:verifyLedger with the installed key: $answer"
  curl -sf --max-time 5 "$url/dashboard" | grep -q '<title>dojo dashboard</title>' || fail "no dashboard"
  [ "$(stat -c %U /var/lib/dojo/dojo.db)" = dojo ] || fail "the database is not the user dojo's"
  for _ in $(seq 1 50); do ls /var/lib/dojo/backups/dojo-backup-*.tar >/dev/null 2>&1 && break; sleep 0.2; done
  kill -TERM "$server_pid"
  wait "$server_pid" || fail "dojo serve did not exit cleanly on SIGTERM"
  server_pid=
  say "the installed binary serves as the user dojo: /health, an admin call with the installed key, the dashboard"
fi

# 5. Remove and purge.
DEBIAN_FRONTEND=noninteractive apt-get purge -y -q dojo >"$work/purge.log" 2>&1 || { cat "$work/purge.log" >&2; fail "apt-get purge dojo"; }
[ ! -e /usr/bin/dojo ] || fail "/usr/bin/dojo is still there after purge"
[ ! -e /etc/dojo/dojo.env ] || fail "/etc/dojo/dojo.env is still there after purge"
[ -d /var/lib/dojo ] || fail "purge removed the data in /var/lib/dojo"
say "ok"
