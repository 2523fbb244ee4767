# common.sh — shell helpers shared by the benchmark scripts (sourced, not run):
# starting and stopping the local OIDC issuer and `dojo serve`, calling
# functions over HTTP, reading /metrics, counting durable syncs, printing
# result lines. Every process started here is recorded and stopped by
# bench_cleanup (the scripts install it as their EXIT trap).
#
# Needs: BENCH_DIR (bench/), ROOT (the repository), WORK (a temp dir),
# DOJO_BIN (a copy of build/dojo that a concurrent rebuild cannot replace).
# shellcheck shell=bash

BENCH_PIDS=()         # processes to stop on exit (servers, issuer)
BENCH_RESULTS="${BENCH_RESULTS:-}" # file the result lines are appended to

die() {
  echo "bench: $*" >&2
  exit 1
}

note() {
  echo "  · $*" >&2
}

# Prints a result: one line of figures, then the command that reruns it.
#   result "a. HTTP query users:me" "16163 req/s, p50 3.86 ms" "bash bench/run.sh query"
result() {
  local line
  line=$(printf '%-44s %s' "$1" "$2")
  printf '%s\n    rerun: %s\n' "$line" "$3" | tee -a "${BENCH_RESULTS:-/dev/null}"
}

# An indented detail line under a result (also into the results file).
detail() {
  printf '    %s\n' "$*" | tee -a "${BENCH_RESULTS:-/dev/null}"
}

# "TID TICKS" (user + system CPU, in clock ticks) for every thread of the server.
thread_cpu() {
  local t
  for t in /proc/"$SRV_PID"/task/*; do
    awk -v tid="${t##*/}" '{ print tid, $14 + $15 }' "$t/stat" 2>/dev/null || true
  done | sort
}

# How busy the server's threads were between two thread_cpu snapshots ($1,
# $2) taken $3 seconds apart: the event loop (the main thread, TID = PID)
# first, then the busiest other threads (storage, readers, libuv pool).
cpu_summary() {
  local hz
  hz=$(getconf CLK_TCK)
  join "$1" "$2" | awk -v pid="$SRV_PID" -v s="$3" -v hz="$hz" '
    { pct = 100 * ($3 - $2) / hz / s; if ($1 == pid) loop = pct; else if (pct >= 1) other[++n] = pct }
    END {
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (other[j] > other[i]) { t = other[i]; other[i] = other[j]; other[j] = t }
      printf "server CPU: event loop %.0f%%", loop
      if (n) { printf ", other threads"; for (i = 1; i <= n && i <= 4; i++) printf " %.0f%%", other[i] }
      printf " (of one core each; the load generator shares the machine)\n"
    }'
}

# Stops one recorded process: SIGTERM, up to 15 s, then SIGKILL.
stop_pid() {
  local pid="$1"
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "bench: process $pid did not stop on SIGTERM; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

bench_cleanup() {
  local i
  for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${BENCH_PIDS[$i]}"; done
  BENCH_PIDS=()
}

# Waits until file $1 holds a line matching the extended regex $2 (printing
# the first match), while process $3 lives; gives up after $4 seconds.
wait_for_line() {
  local file="$1" re="$2" pid="$3" timeout_s="${4:-30}" m
  for _ in $(seq $((timeout_s * 20))); do
    m=$(grep -m1 -oE "$re" "$file" 2>/dev/null || true)
    if [ -n "$m" ]; then
      echo "$m"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$file" >&2; die "process $pid exited before printing /$re/"; }
    sleep 0.05
  done
  cat "$file" >&2
  die "no /$re/ within ${timeout_s}s"
}

# Starts the issuer; sets ISSUER_URL.
start_issuer() {
  node "$BENCH_DIR/lib/issuer.mjs" >"$WORK/issuer.out" 2>&1 &
  local pid=$!
  BENCH_PIDS+=("$pid")
  ISSUER_URL=$(wait_for_line "$WORK/issuer.out" 'http://127\.0\.0\.1:[0-9]+' "$pid" 20)
}

# Starts `dojo serve` on database $2 in a new directory $WORK/$1, with the
# issuer as CLERK_ISSUER_URL and the admin key ADMIN_KEY. More serve
# arguments may follow. SIGNUP_CREDITS and PRICING come from the environment
# of the caller (exported); BENCH_SERVE_ARGS (e.g. "--readers 4") is added to
# every server's command line. BENCH_WRAPPER, when set, is a command dojo runs
# under (valgrind). Otherwise, when strace is there (and BENCH_STRACE is not 0)
# the server runs under `strace --seccomp-bpf -e trace=fsync,fdatasync`, which
# stops it only on those calls, so each durable sync is logged with its time
# and file: that is how commits are counted (see count_syncs).
# Sets SRV_URL, SRV_PID (dojo itself), SRV_OUTER (what was started: strace or
# dojo), SRV_DIR, SRV_LOG (stderr), SRV_SYNCS.
start_dojo() {
  local name="$1" db="$2"
  shift 2
  SRV_DIR="$WORK/$name"
  mkdir -p "$SRV_DIR"
  SRV_LOG="$SRV_DIR/stderr.log"
  SRV_SYNCS=""
  local wrapper=() strace_wrapped=0 start_timeout_s=30
  if [ -n "${BENCH_WRAPPER:-}" ]; then
    # e.g. valgrind, which runs dojo in its own process: no child to find
    read -r -a wrapper <<<"$BENCH_WRAPPER"
    start_timeout_s=180
  elif [ "${BENCH_STRACE:-1}" != 0 ] && command -v strace >/dev/null 2>&1; then
    strace_wrapped=1
    SRV_SYNCS="$SRV_DIR/syncs.log"
    wrapper=(strace -f -qq --seccomp-bpf -e 'trace=fsync,fdatasync' -e signal=none -y -ttt -T -o "$SRV_SYNCS")
  fi
  (
    cd "$SRV_DIR" || exit 1
    export DOJO_ADMIN_KEY="$ADMIN_KEY" CLERK_ISSUER_URL="$ISSUER_URL"
    # shellcheck disable=SC2086 # BENCH_SERVE_ARGS is a list of words
    exec "${wrapper[@]}" "$DOJO_BIN" serve --db "$db" --listen 127.0.0.1:0 "$@" ${BENCH_SERVE_ARGS:-}
  ) 2>"$SRV_LOG" &
  local outer=$!
  SRV_OUTER=$outer
  SRV_PID=$outer
  if [ "$strace_wrapped" = 1 ]; then
    # dojo is strace's child; stop dojo (strace then exits by itself).
    for _ in $(seq 100); do
      SRV_PID=$(pgrep -P "$outer" | head -n1 || true)
      [ -n "$SRV_PID" ] && break
      kill -0 "$outer" 2>/dev/null || { cat "$SRV_LOG" >&2; die "strace/dojo exited at start"; }
      sleep 0.05
    done
    [ -n "$SRV_PID" ] || die "dojo did not start under strace"
    BENCH_PIDS+=("$outer")
  fi
  BENCH_PIDS+=("$SRV_PID")
  SRV_URL=$(wait_for_line "$SRV_LOG" 'listening on http://[^ ]+' "$SRV_PID" "$start_timeout_s")
  SRV_URL=${SRV_URL#listening on }
}

# Stops the current server (and its strace) and fails loudly unless dojo
# exited with status 0 (strace exits with its tracee's status).
stop_dojo() {
  stop_pid "$SRV_PID"
  local rc=0 keep=() p
  wait "$SRV_OUTER" 2>/dev/null || rc=$?
  for p in "${BENCH_PIDS[@]}"; do
    [ "$p" = "$SRV_PID" ] || [ "$p" = "$SRV_OUTER" ] || keep+=("$p")
  done
  BENCH_PIDS=("${keep[@]}")
  [ "$rc" -eq 0 ] || { tail -n 20 "$SRV_LOG" >&2; die "dojo exited with status $rc (log: $SRV_LOG)"; }
}

# POSTs one function call; prints the response body. $1 route (/api/query or
# /api/mutation), $2 Authorization value ("" for none), $3 JSON body.
call() {
  local auth=()
  [ -n "$2" ] && auth=(-H "Authorization: $2")
  curl -sS --fail-with-body -X POST "$SRV_URL$1" -H 'Content-Type: application/json' "${auth[@]}" -d "$3"
}

# Like call, but fails unless the function succeeded.
call_ok() {
  local out
  out=$(call "$@") || die "POST $1 $3 failed: $out"
  case "$out" in
    '{"status":"success"'*) echo "$out" ;;
    *) die "POST $1 $3 did not succeed: $out" ;;
  esac
}

# The value of one /metrics sample, e.g.
#   metric 'dojo_function_calls_total{function="users:me",outcome="ok"}'
metric() {
  curl -sS "$SRV_URL/metrics" | awk -v k="$1" 'index($0, k " ") == 1 { print $2; found = 1 } END { if (!found) print 0 }'
}

# "ok error internal" counts of function $1.
fn_counts() {
  local m
  m=$(curl -sS --fail "$SRV_URL/metrics") || die "GET /metrics failed"
  local f
  for f in ok error internal_error; do
    awk -v k="dojo_function_calls_total{function=\"$1\",outcome=\"$f\"}" \
      'index($0, k " ") == 1 { print $2; found = 1 } END { if (!found) print 0 }' <<<"$m"
  done | paste -sd' '
}

# Durable syncs logged between epoch times $1 and $2 (seconds, fractions
# allowed), as "WAL DB WAL_S DB_S": the number of fsync/fdatasync calls on the
# -wal file (one per commit, plus those of checkpoints) and on the database
# file (checkpoints only), and the seconds spent in each kind (strace -T).
# strace writes its log as it goes; a short wait lets the last lines land.
count_syncs() {
  [ -n "$SRV_SYNCS" ] || { echo "- - - -"; return; }
  sleep 0.2
  awk -v from="$1" -v to="$2" '
    $2 + 0 >= from && $2 + 0 <= to && /(fsync|fdatasync)\(/ {
      d = $NF; gsub(/[<>]/, "", d)
      if ($0 ~ /-wal>/) { wal++; wal_s += d } else if ($0 ~ /\.db>/) { db++; db_s += d }
    }
    END { printf "%d %d %.3f %.3f\n", wal, db, wal_s, db_s }' "$SRV_SYNCS"
}

# "TID WCHAR" for every thread of the server: bytes each has passed to
# write/pwrite so far (/proc/PID/task/TID/io).
thread_wchar() {
  local t
  for t in /proc/"$SRV_PID"/task/*; do
    echo "${t##*/} $(awk '$1 == "wchar:" { print $2 }' "$t/io" 2>/dev/null || echo 0)"
  done | sort
}

# The largest growth between two thread_wchar snapshots (files $1, $2): the
# storage thread's, during a write benchmark (its writes are all WAL frames
# and checkpoint pages; the loop thread writes sockets and log lines).
max_wchar_growth() {
  join "$1" "$2" | awk '{ d = $3 - $2; if (d > m) m = d } END { print m + 0 }'
}

now_s() {
  date +%s.%N
}

# Runs wrk against the current server. $1 route, $2 requests file, $3 output
# file; WRK_ARGS (default "-t2 -c64 -d10s") may change the load. Prints the
# wrk command line it ran (for the rerun hint).
run_wrk() {
  local route="$1" reqs="$2" out="$3"
  local args
  read -r -a args <<<"${WRK_ARGS:--t2 -c64 -d10s}"
  BENCH_REQUESTS="$reqs" BENCH_ROUTE="$route" wrk "${args[@]}" --latency -s "$BENCH_DIR/wrk/post.lua" "$SRV_URL" >"$out" 2>&1 ||
    { cat "$out" >&2; die "wrk failed"; }
}

# From a wrk output file: "RPS P50_MS P99_MS REQUESTS NON2XX ERRORS".
wrk_figures() {
  awk '
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
      return v + 0
    }
    /^Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    / requests in / { n = $1 }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    /Socket errors:/ { errs = $0; sub(/.*Socket errors: /, "", errs); gsub(/ /, "", errs) }
    END { printf "%.0f %.2f %.2f %d %d %s\n", rps, p50, p99, n, non2xx + 0, errs == "" ? "none" : errs }
  ' "$1"
}
