# reads.sh — the read side against references measured in the same run
# (sourced by bench/run.sh, which starts the issuer and builds dojo first).
# Each figure is a ratio to a reference interleaved with it — same machine,
# same minute, same load generator — repeated BENCH_REPS times (default 3),
# reported as its median and its spread (min–max):
#
#   cache     q. users:me over HTTP (answered from the query cache) against
#                nginx answering the same requests with the same body
#                (static `return 200`), wrk ${WRK_ARGS:--t2 -c64 -d10s}
#   nchan     n. one commit pushed to FANOUT_N (1,000) subscribers of one
#                shared query against nginx + nchan publishing one message
#                to as many WebSocket subscribers; then 10,000 subscribers
#                on dojo: when the last push arrives after the commit
#   sessions  i. resident memory per idle authenticated session holding one
#                subscription (its own users:me), at SESSIONS_N (10,000)
#
# Rerun: bash bench/run.sh cache | nchan | sessions.
# shellcheck shell=bash

# --- q. users:me against nginx -----------------------------------------------------------------

bench_cache_ratio() {
  local label="$1" rerun="$2"
  BENCH_STRACE=0 start_dojo sqlite-q "sqlite:$WORK/sqlite-q/dojo.db"
  local sub="bench_q_${RANDOM}" token answer
  token=$(curl -sS --fail "$ISSUER_URL/token?sub=$sub&email=$sub@bench.example")
  call_ok /api/mutation "Bearer $token" "$REFRESH_BODY" >/dev/null
  answer=$(call_ok /api/query "Bearer $token" "$QUERY_BODY")
  printf 'Bearer %s\t%s\n' "$token" "$QUERY_BODY" >"$SRV_DIR/query.tsv"
  # The same body, as an nginx string literal.
  local body=${answer//\\/\\\\}
  body=${body//\'/\\\'}
  start_nginx nginx-query "server { listen 127.0.0.1:@PORT@; location / { default_type application/json; return 200 '$body'; } }"
  note "dojo serve $SRV_URL (SQLite) and nginx on :$NGINX_PORT, $(reps) rounds"
  local dojo_url="$SRV_URL" r ratios="" dojo_rps="" nginx_rps="" p99s="" rss0 rss_max=0 rss
  sleep 2 # the heap settled after the first answer
  rss0=$(rss_kib)
  for r in $(seq "$(reps)"); do
    SRV_URL="$dojo_url" run_wrk /api/query "$SRV_DIR/query.tsv" "$SRV_DIR/wrk-dojo-$r.txt"
    SRV_URL="$NGINX_URL" run_wrk /api/query "$SRV_DIR/query.tsv" "$SRV_DIR/wrk-nginx-$r.txt"
    local d_rps d_p99 non2xx n_rps
    read -r d_rps _ d_p99 _ non2xx _ <<<"$(wrk_figures "$SRV_DIR/wrk-dojo-$r.txt")"
    read -r n_rps _ <<<"$(wrk_figures "$SRV_DIR/wrk-nginx-$r.txt")"
    [ "$non2xx" -eq 0 ] || die "users:me answered $non2xx non-2xx (see $SRV_LOG)"
    rss=$(rss_kib)
    [ "$rss" -gt "$rss_max" ] && rss_max=$rss
    dojo_rps+="$d_rps"$'\n'
    nginx_rps+="$n_rps"$'\n'
    p99s+="$d_p99"$'\n'
    ratios+="$(ratio_of "$d_rps" "$n_rps")"$'\n'
    note "round $r: dojo $d_rps req/s (p99 $d_p99 ms), nginx $n_rps req/s"
  done
  local hits misses
  hits=$(metric dojo_query_cache_hits_total)
  misses=$(metric dojo_query_cache_misses_total)
  stop_pid "$NGINX_PID"
  stop_dojo
  result "$label" "$(printf '%s' "$ratios" | spread 3)× nginx: dojo $(printf '%s' "$dojo_rps" | spread 0) req/s, nginx $(printf '%s' "$nginx_rps" | spread 0) req/s; dojo p99 $(printf '%s' "$p99s" | spread 2) ms; cache ${hits:-?} hits, ${misses:-?} misses; RSS $(awk -v a="$rss0" -v b="$rss_max" 'BEGIN { printf "%.1f MiB before, %.1f MiB at most after a round", a / 1024, b / 1024 }'); median (min–max) of $(reps) rounds" "$rerun"
}

# --- n. fan-out against nchan ------------------------------------------------------------------

bench_fanout_ratio() {
  local label="$1" rerun="$2" n="${FANOUT_N:-1000}"
  BENCH_STRACE=0 start_dojo sqlite-n "sqlite:$WORK/sqlite-n/dojo.db"
  start_nginx nginx-nchan "server { listen 127.0.0.1:@PORT@; location = /sub { nchan_subscriber websocket; nchan_channel_id bench; } location = /pub { nchan_publisher; nchan_channel_id bench; } location / { return 200 'ok'; } }" \
    "load_module /usr/lib/nginx/modules/ngx_nchan_module.so;"
  note "dojo serve $SRV_URL (SQLite) and nginx + nchan on :$NGINX_PORT, $n subscribers, $(reps) rounds"
  local r ratios="" dojo_rate="" nchan_rate="" p50s="" sp50s="" cp50s="" d c
  for r in $(seq "$(reps)"); do
    d=$(node "$BENCH_DIR/fanout.mjs" fanout "$SRV_URL" "$ISSUER_URL" "$ADMIN_KEY" "$n")
    c=$(node "$BENCH_DIR/nchan_fanout.mjs" "$NGINX_URL" "$n")
    local dr dp sp cr cp
    dr=$(json_field "$d" deliveriesPerSec 0)
    dp=$(json_field "$d" p50FromCommitMs 2)
    sp=$(json_field "$d" serverP50FromCommitMs 2)
    cr=$(json_field "$c" deliveriesPerSec 0)
    cp=$(json_field "$c" p50Ms 2)
    cp50s+="$cp"$'\n'
    dojo_rate+="$dr"$'\n'
    nchan_rate+="$cr"$'\n'
    p50s+="$dp"$'\n'
    sp50s+="$sp"$'\n'
    ratios+="$(ratio_of "$dr" "$cr")"$'\n'
    note "round $r: dojo $dr deliveries/s (p50 $dp ms after the commit), nchan $cr deliveries/s"
  done
  stop_pid "$NGINX_PID"
  result "$label" "$(printf '%s' "$ratios" | spread 2)× nchan: dojo $(printf '%s' "$dojo_rate" | spread 0) deliveries/s, p50 from the commit $(printf '%s' "$p50s" | spread 2) ms at the subscriber, $(printf '%s' "$sp50s" | spread 2) ms stamped by the server; nchan $(printf '%s' "$nchan_rate" | spread 0) deliveries/s, p50 $(printf '%s' "$cp50s" | spread 2) ms from the publish at the subscriber; median (min–max) of $(reps) rounds" "$rerun"
  local big
  big=$(node "$BENCH_DIR/fanout.mjs" fanout "$SRV_URL" "$ISSUER_URL" "$ADMIN_KEY" 10000)
  detail "$(node -e 'const r = JSON.parse(process.argv[1]); console.log(`10,000 subscribers: last push received ${r.lastFromCommitMs.toFixed(1)} ms after the commit (sent by ${r.serverLastFromCommitMs.toFixed(1)} ms), p50 ${r.p50FromCommitMs.toFixed(1)} ms (sent ${r.serverP50FromCommitMs.toFixed(1)} ms), ${Math.round(r.deliveriesPerSec)} deliveries/s`)' "$big")"
  stop_dojo
}

# --- i. idle sessions --------------------------------------------------------------------------

bench_sessions() {
  local label="$1" rerun="$2" n="${SESSIONS_N:-10000}"
  BENCH_STRACE=0 start_dojo sqlite-i "sqlite:$WORK/sqlite-i/dojo.db"
  note "sessions: $n users, one idle session each, each subscribed to its own users:me"
  node "$BENCH_DIR/lib/users.mjs" "$SRV_URL" "$ISSUER_URL" "bench_i_${RANDOM}_" "$n" "$SRV_DIR/users-i.tsv"
  local out
  out=$(node "$BENCH_DIR/sessions.mjs" "$SRV_URL" "$SRV_PID" "$n" "$SRV_DIR/users-i.tsv")
  stop_dojo
  result "$label" "$(node -e 'const r = JSON.parse(process.argv[1]); console.log(`${(r.per_session_bytes / 1024).toFixed(2)} KiB of RSS per session at ${r.sessions} (${(r.rss_before / 1048576).toFixed(1)} → ${(r.rss_open / 1048576).toFixed(1)} MiB; ${(r.rss_after / 1048576).toFixed(1)} MiB once they closed)`)' "$out")" "$rerun"
}
