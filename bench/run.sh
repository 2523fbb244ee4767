#!/usr/bin/env bash
# run.sh — dojo's benchmarks, one command: builds dojo (scripts/build.sh,
# optimised), installs what the benchmarks need (wrk, strace; the npm packages
# of bench/package.json with `npm ci`), starts a local OpenID issuer (real
# RS256 tokens) and `dojo serve` on a fresh SQLite database in a temp dir, and
# measures:
#
#   query      a. HTTP query throughput and latency (wrk, users:me, valid token)
#   mutation   b. HTTP mutation throughput against durable commits (group commit)
#   write      w. runs:create against nginx answering the same requests, in
#                 the same run (a ratio, repeated); bytes per runs:create; the
#                 in-process ceiling (bench/writes.sh)
#   memory     m. RSS idle, under 60 s of runs:create, and 10 s after
#   scale      s. runs:create on a million runs against an empty database
#   pgwrite    p. runs:create on a durable PostgreSQL against pgbench running
#                 the same transaction on the same cluster; two nodes against
#                 one (bench/writes.sh)
#   cache      q. users:me from the query cache against nginx answering the
#                 same requests with the same body, in the same run
#   nchan      n. one commit to 1,000 subscribers against nginx + nchan's
#                 fan-out of one message; 10,000 subscribers (bench/reads.sh)
#   sessions   i. RSS per idle session with one subscription, at 10,000
#   sync       c. WebSocket mutation round trip with the real ConvexClient
#   fanout     d. one write pushed to 1,000 and 5,000 sessions on one query
#   precision  e. one user's write among 1,000 users' sessions: who is pushed
#   callgrind  f. instructions per HTTP query; query re-executions per write
#
# Usage: bash bench/run.sh [query|mutation|write|memory|scale|pgwrite|cache|nchan|sessions|sync|fanout|precision|callgrind ...]
#        (no names: all of them, about 20 minutes on 2 cores, most of it
#        prefilling the million runs of `scale`)
# Each figure is printed as one line with its units and the command that
# reruns it; all lines also go to bench/results/latest.txt. With
# DOJO_BENCH_PG_URL=postgres://... (an empty database it may fill), or
# DOJO_BENCH_PG_URL=auto (a throwaway cluster from scripts/pg.sh), query and
# mutation also run on PostgreSQL. Other knobs: WRK_ARGS (default
# "-t2 -c64 -d10s"), FANOUT_SIZES (default "1000 5000"), PRECISION_SESSIONS
# (1000), RTT_CALLS (1000), CG_SESSIONS (1000), BENCH_SERVE_ARGS (more `dojo
# serve` flags, e.g. "--readers 4"), BENCH_KEEP=1 keeps the temp dir (logs,
# wrk output, callgrind files).
#
# Timings never go into pass/fail tests: this prints figures, it asserts only
# that the calls it times succeeded.
set -euo pipefail

# The knobs this run was given, repeated in every rerun command.
KNOBS=""
for v in WRK_ARGS BENCH_SERVE_ARGS FANOUT_N SESSIONS_N FANOUT_SIZES PRECISION_SESSIONS RTT_CALLS CG_SESSIONS CG_SMALL CG_LARGE BENCH_REPS WRITE_SECONDS SCALE_RUNS PGBENCH_CLIENTS MEM_SECONDS; do
  if [ -n "${!v:-}" ]; then KNOBS="$KNOBS$v='${!v}' "; fi
done

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
# shellcheck source=lib/common.sh
. "$BENCH_DIR/lib/common.sh"
# shellcheck source=http.sh
. "$BENCH_DIR/http.sh"
# shellcheck source=callgrind.sh
. "$BENCH_DIR/callgrind.sh"
# shellcheck source=lib/refs.sh
. "$BENCH_DIR/lib/refs.sh"
# shellcheck source=writes.sh
. "$BENCH_DIR/writes.sh"
# shellcheck source=reads.sh
. "$BENCH_DIR/reads.sh"

ALL=(query mutation write memory scale pgwrite cache nchan sessions sync fanout precision callgrind)
SELECTED=("$@")
[ ${#SELECTED[@]} -gt 0 ] || SELECTED=("${ALL[@]}")
for s in "${SELECTED[@]}"; do
  [[ " ${ALL[*]} " == *" $s "* ]] || die "unknown benchmark '$s' (known: ${ALL[*]})"
done
selected() {
  [[ " ${SELECTED[*]} " == *" $1 "* ]]
}
rerun_of() {
  local env=""
  [ -n "${DOJO_BENCH_PG_URL:-}" ] && [ "${2:-}" = pg ] && env="DOJO_BENCH_PG_URL=$DOJO_BENCH_PG_URL "
  echo "$KNOBS${env}bash bench/run.sh $1"
}

# --- what the benchmarks need ---------------------------------------------------

need_pkg() { # command package
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "bench: installing $2" >&2
  [ "$(id -u)" -eq 0 ] || die "$1 is missing: apt-get install $2 (as root)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null; } ||
    die "cannot install $2"
}
need_pkg wrk wrk
need_pkg strace strace
need_pkg curl curl
need_pkg node nodejs
selected callgrind && need_pkg valgrind valgrind
{ selected write || selected cache || selected nchan; } && need_pkg nginx nginx
if selected nchan && [ ! -e /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
  need_pkg __nchan_module__ libnginx-mod-nchan
fi
selected pgwrite && need_pkg pgbench postgresql

# npm ci only when the lock file changed since the last install.
lock_sum=$(sha256sum "$BENCH_DIR/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$BENCH_DIR/node_modules/.bench-lock-sum" 2>/dev/null)" != "$lock_sum" ]; then
  echo "bench: npm ci (bench/package.json)" >&2
  (cd "$BENCH_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$lock_sum" >"$BENCH_DIR/node_modules/.bench-lock-sum"
fi

# Build (optimised: scripts/build.sh's RelWithDebInfo, -O2 with symbols for
# callgrind). Someone may be rebuilding build/ at the same time (scripts/
# test.sh): retry, then run a private copy of the binary.
echo "bench: building dojo (scripts/build.sh)" >&2
for attempt in 1 2 3 4 5; do
  if "$ROOT/scripts/build.sh" >"/tmp/dojo-bench-build.$$.log" 2>&1 && [ -x "$ROOT/build/dojo" ]; then
    break
  fi
  [ "$attempt" -eq 5 ] && { cat "/tmp/dojo-bench-build.$$.log" >&2; die "build failed"; }
  echo "bench: build attempt $attempt failed (a concurrent build?); retrying" >&2
  sleep 5
done
rm -f "/tmp/dojo-bench-build.$$.log"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dojo-bench.XXXXXX")
on_exit() {
  local rc=$?
  bench_cleanup
  if [ -n "${PG_DIR:-}" ]; then "$ROOT/scripts/pg.sh" stop "$PG_DIR" >/dev/null 2>&1 || true; fi
  if [ -n "${PGW_DIR:-}" ]; then "$ROOT/scripts/pg.sh" stop "$PGW_DIR" >/dev/null 2>&1 || true; fi
  if [ "${BENCH_KEEP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
    echo "bench: logs and data kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

DOJO_BIN="$WORK/dojo"
for _ in $(seq 60); do
  cp "$ROOT/build/dojo" "$DOJO_BIN" 2>/dev/null && break
  sleep 1
done
[ -x "$DOJO_BIN" ] || die "no build/dojo to copy"
STOREBENCH_BIN="$WORK/dojo-storebench"
cp "$ROOT/build/dojo-storebench" "$STOREBENCH_BIN" 2>/dev/null || die "no build/dojo-storebench to copy"

# Thousands of sockets: raise the open-file limit (inherited by dojo and node).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 12000 ] || echo "bench: warning: ulimit -n is $(ulimit -n); 5,000 sessions need about 10,500" >&2

mkdir -p "$BENCH_DIR/results"
BENCH_RESULTS="$BENCH_DIR/results/latest.txt"
ADMIN_KEY="bench-admin-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export SIGNUP_CREDITS=1000000 PRICING='{"default":1}'

{
  echo "dojo benchmarks — $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' (src has uncommitted changes)'), build $(grep -m1 CMAKE_BUILD_TYPE: "$ROOT/build/CMakeCache.txt" 2>/dev/null | cut -d= -f2)"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/^Mem:/ { print $2 }') GiB, $(uname -sr); load and server share the cores"
  echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)$(awk '$1 > 0.5 { printf " (other work is running: figures are noisy)" }' /proc/loadavg)"
  echo "command: ${KNOBS}${DOJO_BENCH_PG_URL:+DOJO_BENCH_PG_URL=$DOJO_BENCH_PG_URL }bash bench/run.sh ${*:-}"
  echo
} | tee "$BENCH_RESULTS"

start_issuer
note "issuer $ISSUER_URL"

# --- SQLite --------------------------------------------------------------------------

if selected write; then
  bench_write_ratio "w. runs:create, SQLite vs nginx" "$(rerun_of write)"
fi

if selected memory; then
  BENCH_STRACE=0 start_dojo sqlite-mem "sqlite:$WORK/sqlite-mem/dojo.db"
  note "dojo serve $SRV_URL (SQLite) for the memory figures"
  bench_memory "m. memory, SQLite" "$(rerun_of memory)"
  stop_dojo
fi

if selected scale; then
  bench_scale "s. runs:create, 1M runs vs empty" "$(rerun_of scale)"
fi

if selected cache; then
  bench_cache_ratio "q. users:me from the cache vs nginx" "$(rerun_of cache)"
fi

if selected nchan; then
  bench_fanout_ratio "n. fan-out to ${FANOUT_N:-1000} vs nchan" "$(rerun_of nchan)"
fi

if selected sessions; then
  bench_sessions "i. idle sessions, one subscription each" "$(rerun_of sessions)"
fi

if selected query || selected mutation || selected sync; then
  start_dojo sqlite "sqlite:$WORK/sqlite/dojo.db"
  note "dojo serve $SRV_URL (SQLite, synchronous=FULL)"
  selected query && bench_query "a. HTTP query users:me (SQLite)" "$(rerun_of query)"
  selected mutation && bench_mutations "b. HTTP mutation" "$(rerun_of mutation)"
  if selected sync; then
    note "ConvexClient: ${RTT_CALLS:-1000} sequential mutations, twice"
    out=$(node "$BENCH_DIR/sync_rtt.mjs" "$SRV_URL" "$ISSUER_URL" "${RTT_CALLS:-1000}")
    result "c. WS mutation round trip, runs:create" "$(node "$BENCH_DIR/lib/fmt.mjs" rtt-write "$out")" "$(rerun_of sync)"
    result "c. WS mutation round trip, no-op" "$(node "$BENCH_DIR/lib/fmt.mjs" rtt-noop "$out")" "$(rerun_of sync)"
  fi
  stop_dojo
fi

if selected fanout || selected precision; then
  start_dojo sqlite-ws "sqlite:$WORK/sqlite-ws/dojo.db"
  note "dojo serve $SRV_URL (SQLite) for the sync sessions"
  if selected fanout; then
    for n in ${FANOUT_SIZES:-1000 5000}; do
      note "fan-out: $n sessions on one users:me"
      out=$(node "$BENCH_DIR/fanout.mjs" fanout "$SRV_URL" "$ISSUER_URL" "$ADMIN_KEY" "$n")
      figures=$(node "$BENCH_DIR/lib/fmt.mjs" fanout "$out")
      result "d. fan-out to $n sessions" "$figures" "$(rerun_of fanout)"
    done
  fi
  if selected precision; then
    n=${PRECISION_SESSIONS:-1000}
    note "precision: $n users, one session each"
    node "$BENCH_DIR/lib/users.mjs" "$SRV_URL" "$ISSUER_URL" "bench_p_${RANDOM}_" "$n" "$SRV_DIR/users-p.tsv"
    out=$(node "$BENCH_DIR/fanout.mjs" precision "$SRV_URL" "$ISSUER_URL" "$ADMIN_KEY" "$n" "$SRV_DIR/users-p.tsv")
    figures=$(node "$BENCH_DIR/lib/fmt.mjs" precision "$out")
    result "e. invalidation precision" "$figures" "$(rerun_of precision)"
    others=$(node "$BENCH_DIR/lib/fmt.mjs" field:others "$out")
    [ "$others" -eq 0 ] || echo "bench: WARNING: $others sessions were pushed by another user's write" >&2
  fi
  stop_dojo
fi

# --- PostgreSQL (optional) --------------------------------------------------------------

if [ -n "${DOJO_BENCH_PG_URL:-}" ] && { selected query || selected mutation || selected memory; }; then
  pg_url="$DOJO_BENCH_PG_URL"
  if [ "$pg_url" = auto ]; then
    note "starting a throwaway PostgreSQL cluster (scripts/pg.sh: fsync off — no durability figures)"
    pg_env=$("$ROOT/scripts/pg.sh" start)
    PG_DIR=$(sed -n 's/^DOJO_TEST_PG_DIR=//p' <<<"$pg_env")
    pg_url=$(sed -n 's/^DOJO_TEST_PG_URL=//p' <<<"$pg_env")
  fi
  SRV_PG_URL="$pg_url"
  BENCH_STRACE=0 start_dojo postgres "$pg_url"
  note "dojo serve $SRV_URL (PostgreSQL $pg_url)"
  selected query && bench_query "a. HTTP query users:me (PostgreSQL)" "$(rerun_of query pg)"
  selected mutation && bench_mutations "b. PG HTTP mutation" "$(rerun_of mutation pg)"
  stop_dojo
  if selected memory; then
    schema="mem_$RANDOM"
    psql "$pg_url" -qc "CREATE SCHEMA $schema" >/dev/null
    sep="?"; [[ "$pg_url" == *\?* ]] && sep="&"
    BENCH_STRACE=0 start_dojo pg-mem "$pg_url${sep}options=-csearch_path%3D$schema"
    bench_memory "m. memory, PostgreSQL" "$(rerun_of memory pg)"
    stop_dojo
  fi
  SRV_PG_URL=""
fi

if selected pgwrite; then
  bench_pg_ratio "p. runs:create, PostgreSQL vs pgbench" "$(rerun_of pgwrite)"
fi

# --- callgrind ---------------------------------------------------------------------------

selected callgrind && bench_callgrind "$(rerun_of callgrind)"

echo
echo "bench: results in bench/results/latest.txt" >&2
