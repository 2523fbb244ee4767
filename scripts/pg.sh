#!/usr/bin/env bash
# pg.sh — a throwaway PostgreSQL cluster for dojo's tests.
#
#   scripts/pg.sh start [URL_FILE]   initdb a new cluster in a fresh temp dir,
#                                    start it on 127.0.0.1 and a free port
#                                    (its unix socket in that dir), create the
#                                    database "dojo", and print
#                                      DOJO_TEST_PG_DIR=<dir>
#                                      DOJO_TEST_PG_URL=postgres://dojo@127.0.0.1:<port>/dojo
#                                    (also written to URL_FILE when given), so
#                                    that `eval "$(scripts/pg.sh start)"` works.
#   scripts/pg.sh stop DIR           stop that cluster and remove DIR.
#
# Trust authentication, fsync off: for tests only, never for data (with
# PG_DURABLE=1 the cluster syncs as a production one does: fsync,
# synchronous_commit and full_page_writes on — the benchmarks). As root the
# server runs as the unprivileged `postgres` user (initdb refuses root). The
# port is probed rather than fixed, so a system cluster on 5432 (or another
# test run) does not collide. Binaries: $PG_BIN, else the newest
# /usr/lib/postgresql/*/bin (Debian), else the PATH.
set -euo pipefail

die() {
  echo "pg.sh: $*" >&2
  exit 1
}

pg_bin() {
  if [ -n "${PG_BIN:-}" ]; then
    echo "$PG_BIN"
    return
  fi
  local newest
  newest=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$newest" ] && [ -x "$newest/initdb" ]; then
    echo "$newest"
    return
  fi
  command -v initdb >/dev/null 2>&1 || die "no PostgreSQL server binaries (install postgresql, or set PG_BIN)"
  dirname "$(command -v initdb)"
}

# Runs a command as the cluster's owner: `postgres` when we are root.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root, but there is no 'postgres' user to run the server"
    if command -v runuser >/dev/null 2>&1; then
      runuser -u postgres -- "$@"
    else
      su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
  else
    "$@"
  fi
}

port_busy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
  local url_file="${1:-}"
  local bin
  bin=$(pg_bin)
  local base="${TMPDIR:-/tmp}"
  [ "$(id -u)" -eq 0 ] && base=/tmp # the postgres user must reach it
  local dir
  dir=$(mktemp -d "$base/dojo-pg.XXXXXX")
  chmod 700 "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  as_owner "$bin/initdb" -D "$dir/data" -U dojo -A trust -E UTF8 --locale=C.UTF-8 --no-sync \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; rm -rf "$dir"; die "initdb failed"; }

  local port="" attempt
  for attempt in $(seq 1 20); do
    local candidate=$((20000 + RANDOM % 30000))
    port_busy "$candidate" && continue
    local sync_opts="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    [ "${PG_DURABLE:-0}" = 1 ] && sync_opts="-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
    if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $candidate -c unix_socket_directories=$dir \
          $sync_opts -c max_connections=300 -c shared_buffers=64MB" >/dev/null 2>&1; then
      port=$candidate
      break
    fi
  done
  if [ -z "$port" ]; then
    cat "$dir/server.log" >&2 || true
    rm -rf "$dir"
    die "could not start PostgreSQL (see the log above)"
  fi
  # A linguistic default collation (ICU en-US sorts "a" before "B") proves that
  # dojo never relies on the database's collation for its key order.
  as_owner "$bin/createdb" -h "$dir" -p "$port" -U dojo -T template0 \
    --locale-provider=icu --icu-locale=en-US dojo 2>/dev/null ||
    as_owner "$bin/createdb" -h "$dir" -p "$port" -U dojo dojo ||
    { as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"; die "createdb failed"; }

  local out
  out=$(printf 'DOJO_TEST_PG_DIR=%s\nDOJO_TEST_PG_URL=postgres://dojo@127.0.0.1:%s/dojo\n' "$dir" "$port")
  [ -n "$url_file" ] && printf '%s\n' "$out" >"$url_file"
  printf '%s\n' "$out"
}

stop() {
  local dir="${1:-}"
  [ -n "$dir" ] || die "usage: pg.sh stop DIR"
  [ -d "$dir/data" ] || die "$dir holds no cluster"
  as_owner "$(pg_bin)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) die "usage: pg.sh start [URL_FILE] | pg.sh stop DIR" ;;
esac
