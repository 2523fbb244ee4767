# http.sh — the HTTP benchmarks (sourced by bench/run.sh, which starts the
# issuer and dojo first): wrk, 2 threads, 64 connections, 10 s each, against
# POST /api/query and /api/mutation with real signed tokens.
#
#   bench_query LABEL RERUN      a. users:me with a valid token: req/s, p50, p99
#   bench_mutations LABEL RERUN  b. mutations/s against durable commits/s:
#                                grantCredits on 1 connection (no batching possible),
#                                runs:create by 256 users, users:getOrCreate with
#                                nothing to change, admin:grantCredits to 256 users
#
# Rerun: bash bench/run.sh query | bash bench/run.sh mutation (add
# DOJO_BENCH_PG_URL=... for PostgreSQL). WRK_ARGS overrides "-t2 -c64 -d10s".
#
# Commits are counted from the server's fsync/fdatasync calls (strace, see
# start_dojo in lib/common.sh): with synchronous=FULL every commit syncs the
# WAL file once, and every checkpoint syncs the WAL once more and then the
# database file, so durable commits = WAL syncs - database-file syncs. On
# PostgreSQL commits are not counted (its statistics lag by up to seconds,
# and scripts/pg.sh runs with fsync off anyway). The storage thread's bytes
# per mutation (its wchar in /proc: WAL frames plus checkpoint copies) show
# the write amplification of the indexes.
# shellcheck shell=bash

QUERY_BODY='{"path":"users:me","args":{},"format":"json"}'
CREATE_BODY='{"path":"runs:create","args":{"input":{"model":"flux-schnell","prompt":"a red fox in the snow"}},"format":"json"}'
REFRESH_BODY='{"path":"users:getOrCreate","args":{},"format":"json"}'

bench_query() {
  local label="$1" rerun="$2"
  local sub="bench_q_${RANDOM}"
  local token
  token=$(curl -sS --fail "$ISSUER_URL/token?sub=$sub&email=$sub@bench.example")
  call_ok /api/mutation "Bearer $token" "$REFRESH_BODY" >/dev/null
  call_ok /api/query "Bearer $token" "$QUERY_BODY" >/dev/null
  printf 'Bearer %s\t%s\n' "$token" "$QUERY_BODY" >"$SRV_DIR/query.tsv"
  local before after
  local counts
  counts=$(fn_counts users:me)
  read -r -a before <<<"$counts"
  note "wrk ${WRK_ARGS:--t2 -c64 -d10s} POST /api/query users:me"
  local t0 t1
  thread_cpu >"$SRV_DIR/cpu0"
  t0=$(now_s)
  run_wrk /api/query "$SRV_DIR/query.tsv" "$SRV_DIR/wrk-query.txt"
  t1=$(now_s)
  thread_cpu >"$SRV_DIR/cpu1"
  counts=$(fn_counts users:me)
  read -r -a after <<<"$counts"
  local rps p50 p99 non2xx errs
  read -r rps p50 p99 _ non2xx errs <<<"$(wrk_figures "$SRV_DIR/wrk-query.txt")"
  local ok=$((after[0] - before[0])) bad=$((after[1] - before[1] + after[2] - before[2]))
  [ "$non2xx" -eq 0 ] && [ "$bad" -eq 0 ] ||
    die "users:me under load: $non2xx non-2xx, $bad failed calls (see $SRV_DIR/wrk-query.txt)"
  result "$label" "$rps req/s, p50 $p50 ms, p99 $p99 ms ($ok calls ok, 0 failed; socket errors: $errs)" "$rerun"
  detail "$(cpu_summary "$SRV_DIR/cpu0" "$SRV_DIR/cpu1" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")"
}

# One mutation phase: $1 label, $2 requests file, $3 function path, $4 rerun.
mutation_phase() {
  local label="$1" reqs="$2" fn="$3" rerun="$4" tag
  tag=$(basename "$reqs" .tsv)
  local before after t0 t1
  local counts
  counts=$(fn_counts "$fn")
  read -r -a before <<<"$counts"
  thread_wchar >"$SRV_DIR/wchar0"
  thread_cpu >"$SRV_DIR/cpu0"
  note "wrk ${WRK_ARGS:--t2 -c64 -d10s} POST /api/mutation $fn ($tag)"
  t0=$(now_s)
  run_wrk /api/mutation "$reqs" "$SRV_DIR/wrk-$tag.txt"
  t1=$(now_s)
  counts=$(fn_counts "$fn")
  read -r -a after <<<"$counts"
  thread_wchar >"$SRV_DIR/wchar1"
  thread_cpu >"$SRV_DIR/cpu1"
  local rps p50 p99 non2xx errs
  read -r rps p50 p99 _ non2xx errs <<<"$(wrk_figures "$SRV_DIR/wrk-$tag.txt")"
  local ok=$((after[0] - before[0])) app=$((after[1] - before[1])) internal=$((after[2] - before[2]))
  [ "$non2xx" -eq 0 ] && [ "$internal" -eq 0 ] ||
    die "$fn under load: $non2xx non-2xx, $internal internal errors (see $SRV_LOG)"
  [ "$app" -eq 0 ] || die "$fn under load: $app calls failed with an application error"
  local wal db wal_s db_s commits
  read -r wal db wal_s db_s <<<"$(count_syncs "$t0" "$t1")"
  local secs
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  if [ -n "${SRV_PG_URL:-}" ]; then
    commits="commits not counted on PostgreSQL"
  elif [ "$wal" = "-" ]; then
    commits="commits not counted (no strace)"
  else
    commits=$(awk -v w="$wal" -v db="$db" -v ws="$wal_s" -v dbs="$db_s" -v s="$secs" -v m="$ok" 'BEGIN {
      c = w - db
      per = c > 0 ? sprintf("%.1f", m / c) : "-"
      printf "%.0f durable commits/s (%d WAL fsyncs - %d checkpoints), %s mutations/commit; in fsync %.0f%% of the time", c / s, w, db, per, 100 * (ws + dbs) / s }')
  fi
  local written=""
  if [ "$wal" != "-" ] && [ "$wal" -gt 0 ]; then
    written="; storage thread wrote $(max_wchar_growth "$SRV_DIR/wchar0" "$SRV_DIR/wchar1" |
      awk -v m="$ok" '{ printf "%.1f", m ? $1 / m / 1024 : 0 }') KiB/mutation"
  fi
  result "$label" "$rps mutations/s, p50 $p50 ms, p99 $p99 ms; $commits$written ($ok ok)" "$rerun"
  detail "$(cpu_summary "$SRV_DIR/cpu0" "$SRV_DIR/cpu1" "$secs")"
}

bench_mutations() {
  local label="$1" rerun="$2"
  local users="$SRV_DIR/users-m.tsv"
  note "creating 256 users"
  node "$BENCH_DIR/lib/users.mjs" "$SRV_URL" "$ISSUER_URL" "bench_m_${RANDOM}_" 256 "$users"
  local token id _
  : >"$SRV_DIR/create.tsv"
  : >"$SRV_DIR/refresh.tsv"
  : >"$SRV_DIR/grant.tsv"
  while IFS=$'\t' read -r token id _; do
    printf 'Bearer %s\t%s\n' "$token" "$CREATE_BODY" >>"$SRV_DIR/create.tsv"
    printf 'Bearer %s\t%s\n' "$token" "$REFRESH_BODY" >>"$SRV_DIR/refresh.tsv"
    printf 'Convex %s\t{"path":"admin:grantCredits","args":{"userId":"%s","amount":1},"format":"json"}\n' \
      "$ADMIN_KEY" "$id" >>"$SRV_DIR/grant.tsv"
  done <"$users"
  head -n1 "$SRV_DIR/grant.tsv" >"$SRV_DIR/grant1.tsv"
  WRK_ARGS="-t1 -c1 -d5s" mutation_phase "$label grantCredits, 1 conn" "$SRV_DIR/grant1.tsv" admin:grantCredits "$rerun"
  mutation_phase "$label runs:create, 256 users" "$SRV_DIR/create.tsv" runs:create "$rerun"
  mutation_phase "$label getOrCreate, no change" "$SRV_DIR/refresh.tsv" users:getOrCreate "$rerun"
  mutation_phase "$label grantCredits, 256 users" "$SRV_DIR/grant.tsv" admin:grantCredits "$rerun"
}

# Resident memory (VmRSS) of the server, in KiB.
rss_kib() {
  awk '/^VmRSS:/ { print $2 }' "/proc/$SRV_PID/status"
}

# m. Memory under a sustained write load: RSS idle (after the users exist
# and the heap settled), its peak over MEM_SECONDS (default 60) of
# runs:create at 64 connections, and 10 s after the load stopped.
bench_memory() {
  local label="$1" rerun="$2"
  local users="$SRV_DIR/users-mem.tsv"
  note "creating 256 users"
  node "$BENCH_DIR/lib/users.mjs" "$SRV_URL" "$ISSUER_URL" "bench_mem_${RANDOM}_" 256 "$users"
  local token _
  : >"$SRV_DIR/create-mem.tsv"
  while IFS=$'\t' read -r token _; do
    printf 'Bearer %s\t%s\n' "$token" "$CREATE_BODY" >>"$SRV_DIR/create-mem.tsv"
  done <"$users"
  sleep 3
  local idle peak after secs="${MEM_SECONDS:-60}"
  idle=$(rss_kib)
  peak=$idle
  note "wrk -t2 -c64 -d${secs}s POST /api/mutation runs:create, sampling RSS every second"
  WRK_ARGS="-t2 -c64 -d${secs}s" run_wrk /api/mutation "$SRV_DIR/create-mem.tsv" "$SRV_DIR/wrk-mem.txt" &
  local wrk_pid=$!
  while kill -0 "$wrk_pid" 2>/dev/null; do
    local now
    now=$(rss_kib)
    [ "$now" -gt "$peak" ] && peak=$now
    sleep 1
  done
  wait "$wrk_pid"
  local rps
  read -r rps _ <<<"$(wrk_figures "$SRV_DIR/wrk-mem.txt")"
  sleep 10
  after=$(rss_kib)
  result "$label" "$(awk -v i="$idle" -v p="$peak" -v a="$after" -v r="$rps" -v s="$secs" 'BEGIN {
    printf "RSS idle %.1f MiB; peak %.1f MiB during %d s of runs:create at 64 connections (%d/s); %.1f MiB 10 s after", i / 1024, p / 1024, s, r, a / 1024 }')" "$rerun"
  # What the RSS after is made of: the heap (anonymous), mapped files (the
  # binary, its libraries), shared memory (SQLite's WAL index); and the
  # structures /metrics counts.
  detail "10 s after: $(awk '/^Rss(Anon|File|Shmem):/ { printf "%s %.1f MiB, ", $1, $2 / 1024 }' "/proc/$SRV_PID/status")bounded structures $(curl -sS "$SRV_URL/metrics" | awk '/^dojo_bounded_bytes\{/ && $2 > 0 { split($1, a, "\""); printf "%s %.0f KiB, ", a[2], $2 / 1024 }' | sed 's/, $//')"
}
