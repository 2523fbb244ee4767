# writes.sh — the write path against references measured in the same run
# (sourced by bench/run.sh, which starts the issuer and builds dojo first).
# Each figure is a ratio to a reference run interleaved with it — same
# machine, same minute, same load generator — repeated BENCH_REPS times
# (default 3), reported as its median and its spread (min–max):
#
#   write    w. runs:create over HTTP, SQLite, durable (synchronous=FULL),
#               against nginx answering the same requests with a static body
#               (Debian's nginx, 2 workers); dojo's p99, the bytes written
#               per mutation (the storage thread's and the whole process's),
#               and the in-process ceiling (bench/storebench.c, no HTTP)
#   scale    s. runs:create in-process on a database of SCALE_RUNS runs
#               (default 1,000,000) against an empty one
#   pgwrite  p. runs:create over HTTP on a durable PostgreSQL cluster (fsync,
#               synchronous_commit on) against pgbench -c16 running the same
#               transaction (the user by token, PRICING, a run, the debit, a
#               ledger row) on the same cluster; then two dojo nodes on one
#               database against one, each node served half the users
#
# Rerun: bash bench/run.sh write | scale | pgwrite. Knobs: BENCH_REPS,
# WRITE_SECONDS (default 10 per phase), SCALE_RUNS, PGBENCH_CLIENTS (16).
# shellcheck shell=bash

# wrk against URL $1 with the requests file $2 into $3 (WRK_ARGS as given).
wrk_at() {
  local url="$1" reqs="$2" out="$3"
  local args
  read -r -a args <<<"${WRK_ARGS:--t2 -c64 -d${WRITE_SECONDS:-10}s}"
  BENCH_REQUESTS="$reqs" BENCH_ROUTE=/api/mutation wrk "${args[@]}" --latency -s "$BENCH_DIR/wrk/post.lua" "$url" >"$out" 2>&1 ||
    { cat "$out" >&2; die "wrk failed"; }
}

# Writes the runs:create requests of N users of the current server into $2.
create_requests() {
  local n="$1" out="$2" users="$SRV_DIR/users-$RANDOM.tsv" token _
  node "$BENCH_DIR/lib/users.mjs" "$SRV_URL" "$ISSUER_URL" "bench_w_${RANDOM}_" "$n" "$users"
  : >"$out"
  while IFS=$'\t' read -r token _; do
    printf 'Bearer %s\t%s\n' "$token" "$CREATE_BODY" >>"$out"
  done <"$users"
}

# --- w. SQLite against nginx ------------------------------------------------------------------

bench_write_ratio() {
  local label="$1" rerun="$2"
  start_nginx nginx-static "server { listen 127.0.0.1:@PORT@; location / { default_type application/json; return 200 '{\"status\":\"success\",\"value\":\"0c0t4mq0kgcyj3bny9h6r1vkzbsg\",\"logLines\":[]}'; } }"
  BENCH_STRACE=0 start_dojo sqlite-w "sqlite:$WORK/sqlite-w/dojo.db"
  note "dojo serve $SRV_URL (SQLite) and nginx on :$NGINX_PORT, $(reps) rounds"
  create_requests 256 "$SRV_DIR/create.tsv"
  local r ratios="" dojo_rps="" nginx_rps="" p99s="" thread_kib="" proc_kib=""
  for r in $(seq "$(reps)"); do
    wrk_at "http://127.0.0.1:$NGINX_PORT" "$SRV_DIR/create.tsv" "$SRV_DIR/wrk-nginx-$r.txt"
    local n_rps
    read -r n_rps _ <<<"$(wrk_figures "$SRV_DIR/wrk-nginx-$r.txt")"
    local before after
    read -r -a before <<<"$(fn_counts runs:create)"
    thread_wchar >"$SRV_DIR/wchar0"
    local p0 p1
    p0=$(awk '$1 == "wchar:" { print $2 }' "/proc/$SRV_PID/io")
    wrk_at "$SRV_URL" "$SRV_DIR/create.tsv" "$SRV_DIR/wrk-dojo-$r.txt"
    thread_wchar >"$SRV_DIR/wchar1"
    p1=$(awk '$1 == "wchar:" { print $2 }' "/proc/$SRV_PID/io")
    read -r -a after <<<"$(fn_counts runs:create)"
    local d_rps d_p99 non2xx
    read -r d_rps _ d_p99 _ non2xx _ <<<"$(wrk_figures "$SRV_DIR/wrk-dojo-$r.txt")"
    local ok=$((after[0] - before[0]))
    [ "$non2xx" -eq 0 ] && [ $((after[1] - before[1] + after[2] - before[2])) -eq 0 ] ||
      die "runs:create under load failed (see $SRV_LOG)"
    dojo_rps+="$d_rps"$'\n'
    nginx_rps+="$n_rps"$'\n'
    ratios+="$(ratio_of "$d_rps" "$n_rps")"$'\n'
    p99s+="$d_p99"$'\n'
    thread_kib+="$(max_wchar_growth "$SRV_DIR/wchar0" "$SRV_DIR/wchar1" | awk -v m="$ok" '{ printf "%.1f", $1 / m / 1024 }')"$'\n'
    proc_kib+="$(awk -v a="$p0" -v b="$p1" -v m="$ok" 'BEGIN { printf "%.1f", (b - a) / m / 1024 }')"$'\n'
  done
  stop_dojo
  stop_pid "$NGINX_PID"
  result "$label" "$(printf '%s' "$ratios" | spread 3)× nginx: dojo $(printf '%s' "$dojo_rps" | spread 0)/s, nginx $(printf '%s' "$nginx_rps" | spread 0)/s; dojo p99 $(printf '%s' "$p99s" | spread 1) ms; written per runs:create $(printf '%s' "$thread_kib" | spread 1) KiB by the storage thread, $(printf '%s' "$proc_kib" | spread 1) KiB in all (checkpoints included); median (min–max) of $(reps) rounds" "$rerun"
  local ceiling
  rm -f "$WORK/storebench.db"*
  ceiling=$("$STOREBENCH_BIN" --db "sqlite:$WORK/storebench.db" --seconds "${WRITE_SECONDS:-10}" 2>/dev/null)
  detail "in-process, no HTTP (bench/storebench.c, 64 in flight): $(sed 's/^[^:]*: //' <<<"$ceiling")"
}

# --- s. a grown database against an empty one --------------------------------------------------

bench_scale() {
  local label="$1" rerun="$2" runs="${SCALE_RUNS:-1000000}"
  local db="$WORK/scale/dojo.db" empty="$WORK/scale/empty.db"
  mkdir -p "$WORK/scale"
  note "storebench: prefilling $runs runs (a few minutes), then measuring it and an empty database in turn"
  "$STOREBENCH_BIN" --db "sqlite:$db" --prefill "$runs" --seconds 1 >/dev/null 2>"$WORK/scale/prefill.log" ||
    { cat "$WORK/scale/prefill.log" >&2; die "prefill failed"; }
  local r grown="" fresh="" ratios=""
  for r in $(seq "$(reps)"); do
    rm -f "$empty"*
    local a b
    a=$("$STOREBENCH_BIN" --db "sqlite:$empty" --seconds "${WRITE_SECONDS:-10}" 2>/dev/null | sed -n 's/.*runs:create: \([0-9]*\) mutations.*/\1/p')
    b=$("$STOREBENCH_BIN" --db "sqlite:$db" --seconds "${WRITE_SECONDS:-10}" 2>/dev/null | sed -n 's/.*runs:create: \([0-9]*\) mutations.*/\1/p')
    fresh+="$a"$'\n'
    grown+="$b"$'\n'
    ratios+="$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')"$'\n'
  done
  result "$label" "$(printf '%s' "$ratios" | spread 3)× the empty database's rate: $(printf '%s' "$grown" | spread 0)/s with $runs runs and more, $(printf '%s' "$fresh" | spread 0)/s empty (in-process runs:create, 64 in flight; median (min–max) of $(reps) rounds)" "$rerun"
}

# --- p. PostgreSQL against pgbench, and two nodes against one ------------------------------------

# The pgbench script of runs:create's transaction on the tables of schema
# $1 (dojo's own, made by a dojo that served it), into $2.
pgbench_script() {
  local schema="$1" out="$2" cols
  cat >"$out" <<EOF
\\set u random(0, 255)
BEGIN;
SELECT id AS uid, tok FROM bench_users WHERE n = :u \\gset
SELECT id, creation_time, data FROM users WHERE "k_tokenIdentifier" = decode(:tok, 'hex') ORDER BY creation_time, id LIMIT 1;
SELECT id, creation_time, data FROM _env WHERE "k_name" = decode('2050524943494e47', 'hex') ORDER BY creation_time, id LIMIT 1;
EOF
  # The run: its key columns as dojo fills them for a queued run of the user.
  cols=$(psql_at "SELECT string_agg(quote_ident(column_name), ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_schema = '$schema' AND table_name = 'runs'")
  local values="" c
  for c in ${cols//,/ }; do
    case "$c" in
      id) values+="md5(random()::text)," ;;
      creation_time) values+="extract(epoch from clock_timestamp()) * 1000," ;;
      '"k_userId"') values+="'\\x20'::bytea || convert_to(:uid, 'UTF8')," ;;
      '"k_status"') values+="decode('20717565756564', 'hex')," ;;
      data) values+="decode(:runhex, 'hex')," ;;
      *) values+="'\\x00'::bytea," ;;
    esac
  done
  cat >>"$out" <<EOF
INSERT INTO runs ($cols) VALUES (${values%,});
UPDATE users SET "k_credits" = decode('10c12e847e00000000', 'hex'), data = data WHERE id = :uid;
INSERT INTO transactions (id, creation_time, "k_userId", "k_runId", "k_balanceAfter", data) VALUES (md5(random()::text), extract(epoch from clock_timestamp()) * 1000, '\\x20'::bytea || convert_to(:uid, 'UTF8'), '\\x20'::bytea || convert_to(md5(random()::text), 'UTF8'), decode('10c12e847e00000000', 'hex'), decode(:txnhex, 'hex'));
COMMIT;
EOF
}

psql_at() {
  psql "$PG_BENCH_URL" -v ON_ERROR_STOP=1 -qAtc "$1"
}

bench_pg_ratio() {
  local label="$1" rerun="$2"
  note "starting a durable PostgreSQL cluster (scripts/pg.sh with PG_DURABLE=1: fsync, synchronous_commit on)"
  local env
  env=$(PG_DURABLE=1 "$ROOT/scripts/pg.sh" start)
  PGW_DIR=$(sed -n 's/^DOJO_TEST_PG_DIR=//p' <<<"$env")
  PG_BENCH_URL=$(sed -n 's/^DOJO_TEST_PG_URL=//p' <<<"$env")
  psql_at "CREATE SCHEMA dojo_bench; CREATE SCHEMA pgb"
  local dojo_url="$PG_BENCH_URL?options=-csearch_path%3Ddojo_bench"
  local pgb_url="$PG_BENCH_URL?options=-csearch_path%3Dpgb"

  # pgbench's tables: dojo's own (a server made them), its 256 users, one
  # run and one ledger row to copy the documents' size from.
  BENCH_STRACE=0 start_dojo pg-pgb "$pgb_url"
  create_requests 256 "$SRV_DIR/create.tsv"
  call_ok /api/mutation "$(head -n1 "$SRV_DIR/create.tsv" | cut -f1)" "$CREATE_BODY" >/dev/null
  stop_dojo
  PG_BENCH_URL="$pgb_url" psql_at "CREATE TABLE bench_users AS SELECT (row_number() OVER (ORDER BY id)) - 1 AS n, id, encode(\"k_tokenIdentifier\", 'hex') AS tok FROM users; CREATE UNIQUE INDEX ON bench_users (n)" >/dev/null
  local runhex txnhex
  runhex=$(PG_BENCH_URL="$pgb_url" psql_at "SELECT encode(data, 'hex') FROM runs LIMIT 1")
  txnhex=$(PG_BENCH_URL="$pgb_url" psql_at "SELECT encode(data, 'hex') FROM transactions ORDER BY creation_time DESC LIMIT 1")
  pgbench_script pgb "$WORK/pgbench.sql"

  # dojo: one node (64 connections), and a second one for the pairs.
  BENCH_STRACE=0 start_dojo pg-a "$dojo_url"
  local a_url="$SRV_URL" a_pid="$SRV_PID" a_dir="$SRV_DIR"
  create_requests 256 "$SRV_DIR/create.tsv"
  head -n 128 "$SRV_DIR/create.tsv" >"$SRV_DIR/half-1.tsv"
  tail -n 128 "$SRV_DIR/create.tsv" >"$SRV_DIR/half-2.tsv"
  local r ratios="" dojo_rps="" pgb_tps="" p99s=""
  for r in $(seq "$(reps)"); do
    PGOPTIONS="-c search_path=pgb" pgbench -n -M prepared -c "${PGBENCH_CLIENTS:-16}" -j 2 -T "${WRITE_SECONDS:-10}" \
      -D runhex="$runhex" -D txnhex="$txnhex" -f "$WORK/pgbench.sql" "$PG_BENCH_URL" >"$WORK/pgbench-$r.txt" 2>&1 ||
      { cat "$WORK/pgbench-$r.txt" >&2; die "pgbench failed"; }
    local tps d_rps d_p99
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/pgbench-$r.txt" | head -n1)
    wrk_at "$a_url" "$a_dir/create.tsv" "$a_dir/wrk-pg-$r.txt"
    read -r d_rps _ d_p99 _ <<<"$(wrk_figures "$a_dir/wrk-pg-$r.txt")"
    pgb_tps+="$tps"$'\n'
    dojo_rps+="$d_rps"$'\n'
    p99s+="$d_p99"$'\n'
    ratios+="$(ratio_of "$d_rps" "$tps")"$'\n'
  done
  result "$label" "$(printf '%s' "$ratios" | spread 2)× pgbench: dojo $(printf '%s' "$dojo_rps" | spread 0)/s (p99 $(printf '%s' "$p99s" | spread 1) ms), pgbench -c${PGBENCH_CLIENTS:-16} $(printf '%s' "$pgb_tps" | spread 0) tps; median (min–max) of $(reps) rounds" "$rerun"

  # Two nodes: each serves half the users, against one node serving both
  # halves from the same two wrk.
  BENCH_STRACE=0 start_dojo pg-b "$dojo_url"
  local b_url="$SRV_URL"
  local one="" two="" pair=""
  for r in $(seq "$(reps)"); do
    local w
    WRK_ARGS="-t1 -c32 -d${WRITE_SECONDS:-10}s" wrk_at "$a_url" "$a_dir/half-1.tsv" "$a_dir/wrk-one-1.txt" &
    w=$!
    WRK_ARGS="-t1 -c32 -d${WRITE_SECONDS:-10}s" wrk_at "$a_url" "$a_dir/half-2.tsv" "$a_dir/wrk-one-2.txt"
    wait "$w"
    WRK_ARGS="-t1 -c32 -d${WRITE_SECONDS:-10}s" wrk_at "$a_url" "$a_dir/half-1.tsv" "$a_dir/wrk-two-1.txt" &
    w=$!
    WRK_ARGS="-t1 -c32 -d${WRITE_SECONDS:-10}s" wrk_at "$b_url" "$a_dir/half-2.tsv" "$a_dir/wrk-two-2.txt"
    wait "$w"
    local o1 o2 t1 t2
    read -r o1 _ <<<"$(wrk_figures "$a_dir/wrk-one-1.txt")"
    read -r o2 _ <<<"$(wrk_figures "$a_dir/wrk-one-2.txt")"
    read -r t1 _ <<<"$(wrk_figures "$a_dir/wrk-two-1.txt")"
    read -r t2 _ <<<"$(wrk_figures "$a_dir/wrk-two-2.txt")"
    one+="$((o1 + o2))"$'\n'
    two+="$((t1 + t2))"$'\n'
    pair+="$(ratio_of "$((t1 + t2))" "$((o1 + o2))")"$'\n'
  done
  stop_dojo
  SRV_PID=$a_pid
  SRV_OUTER=$a_pid
  stop_dojo
  result "${label/PostgreSQL/two nodes}" "$(printf '%s' "$pair" | spread 2)× one node: two nodes $(printf '%s' "$two" | spread 0)/s, one node $(printf '%s' "$one" | spread 0)/s (runs:create, the same two wrk -t1 -c32, each on half the users); median (min–max) of $(reps) rounds" "$rerun"
  "$ROOT/scripts/pg.sh" stop "$PGW_DIR" >/dev/null 2>&1 || true
  PGW_DIR=""
}
