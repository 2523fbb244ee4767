# callgrind.sh — counts instead of timings (sourced by bench/run.sh): dojo
# runs under valgrind --tool=callgrind, which counts every instruction it
# executes (all threads) and every function call, whatever else the machine
# is doing. Rerun: bash bench/run.sh callgrind
#
#   f1. instructions per HTTP query: two servers, identical except that one
#       answers CG_SMALL and the other CG_LARGE sequential users:me queries
#       (valid token, one kept-alive connection); the difference of their
#       totals divided by the difference of the counts cancels start-up,
#       JWKS fetch and shutdown.
#   f2. query executions after one write: CG_SESSIONS sync sessions, each its
#       own user subscribed to users:me, then one admin:grantCredits to one of
#       them; calls to `me` (users.c) minus the CG_SESSIONS first runs are the
#       re-executions the write caused (1 is right).
#   f3. the same number of sessions all on one user: identical subscriptions
#       share one execution, so `me` runs once at subscribe and once after
#       the grant (2 is right), however many sessions listen.
# shellcheck shell=bash

CG_SMALL=${CG_SMALL:-100}
CG_LARGE=${CG_LARGE:-1100}
CG_SESSIONS=${CG_SESSIONS:-1000}

# Total instructions (Ir) of a callgrind output file.
cg_total() {
  awk '/^(summary|totals):/ { print $2; exit }' "$1"
}

# How many times function $2 was called, from a callgrind output file
# written with --compress-strings=no.
cg_calls_to() {
  awk -v f="$2" '
    $0 == "cfn=" f { want = 1; next }
    want && /^calls=/ { split($1, a, "="); n += a[2]; want = 0; next }
    /^cfn=/ { want = 0 }
    END { print n + 0 }' "$1"
}

# Inclusive instructions of function $2 (all its calls, callees included), from
# a callgrind output file; 0 when it never ran. A static function's clone
# (name.constprop.0, name.part.0) counts as the function.
cg_incl() {
  callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$1" 2>/dev/null |
    awk -v f="$2" '{ gsub(",", "", $1) } index($0, ":" f " [") || index($0, ":" f ".") { n += $1 } END { print n + 0 }'
}

# Starts dojo under callgrind in $WORK/$1; sets CG_OUT.
cg_start() {
  CG_OUT="$WORK/$1/callgrind.out"
  mkdir -p "$WORK/$1"
  BENCH_WRAPPER="valgrind --tool=callgrind --compress-strings=no --compress-pos=no --callgrind-out-file=$CG_OUT" \
    start_dojo "$1" "sqlite:$WORK/$1/dojo.db"
}

# One server that answers $2 users:me queries; sets CG_IR (all instructions)
# and CG_ME (runs of users:me).
cg_query_run() {
  cg_start "$1"
  local sub="bench_cg_${RANDOM}" token
  token=$(curl -sS --fail "$ISSUER_URL/token?sub=$sub&email=$sub@bench.example")
  call_ok /api/mutation "Bearer $token" "$REFRESH_BODY" >/dev/null
  node "$BENCH_DIR/lib/seq_calls.mjs" "$SRV_URL" /api/query "Bearer $token" "$QUERY_BODY" "$2"
  stop_dojo
  CG_IR=$(cg_total "$CG_OUT")
  CG_ME=$(cg_calls_to "$CG_OUT" me)
  [ -n "$CG_IR" ] || die "no instruction total in $CG_OUT"
}

bench_callgrind() {
  local rerun="$1"
  command -v valgrind >/dev/null 2>&1 || die "valgrind is not installed (apt-get install valgrind)"
  note "callgrind: $CG_SMALL then $CG_LARGE sequential users:me queries"
  local small large
  cg_query_run cg-small "$CG_SMALL"
  small=("$CG_IR" "$CG_ME")
  cg_query_run cg-large "$CG_LARGE"
  large=("$CG_IR" "$CG_ME")
  local n=$((CG_LARGE - CG_SMALL))
  local per=$(((large[0] - small[0]) / n))
  local me_runs=$((large[1] - small[1]))
  [ "$me_runs" -eq "$n" ] || note "warning: users:me ran $me_runs times for $n extra queries"
  result "f1. callgrind, HTTP query users:me" \
    "$per instructions per request, all threads ($n requests: ${large[0]} - ${small[0]} Ir)" "$rerun"
  # where they go: inclusive cost of the main steps, per request (the
  # difference of the two runs, like the total)
  local parts="" f label v
  for f in auth_verify:"token check (auth_verify)" check_signature:"of which RSA signature" \
    jwt_decode:"JWT decode" run_query:"query on a reader thread (run_query)" \
    column_doc:"of which document JSON parse" respond_json:"response JSON" log_write:"log line" \
    http_parser_execute:"HTTP parsing"; do
    label=${f#*:}
    f=${f%%:*}
    v=$((($(cg_incl "$WORK/cg-large/callgrind.out" "$f") - $(cg_incl "$WORK/cg-small/callgrind.out" "$f")) / n))
    parts="$parts${parts:+; }$label $v"
  done
  echo "    instructions per request by step (inclusive): $parts" | tee -a "${BENCH_RESULTS:-/dev/null}"

  note "callgrind: $CG_SESSIONS sessions, one user each, one grant"
  cg_start cg-precision
  node "$BENCH_DIR/lib/users.mjs" "$SRV_URL" "$ISSUER_URL" "bench_cgp_${RANDOM}_" "$CG_SESSIONS" "$SRV_DIR/users.tsv"
  local out
  out=$(node "$BENCH_DIR/fanout.mjs" precision "$SRV_URL" "$ISSUER_URL" "$ADMIN_KEY" "$CG_SESSIONS" "$SRV_DIR/users.tsv")
  stop_dojo
  local me_calls reruns pushed
  me_calls=$(cg_calls_to "$CG_OUT" me)
  reruns=$((me_calls - CG_SESSIONS))
  pushed=$(node "$BENCH_DIR/lib/fmt.mjs" field:pushed "$out")
  result "f2. re-executions after one grant" \
    "$reruns users:me re-run(s) for $CG_SESSIONS subscribed users ($me_calls runs in all = $CG_SESSIONS first + $reruns; $pushed session(s) pushed)" "$rerun"

  note "callgrind: $CG_SESSIONS sessions on one user, one grant"
  cg_start cg-shared
  node "$BENCH_DIR/fanout.mjs" fanout "$SRV_URL" "$ISSUER_URL" "$ADMIN_KEY" "$CG_SESSIONS" >/dev/null
  stop_dojo
  me_calls=$(cg_calls_to "$CG_OUT" me)
  local sends per_push
  sends=$(cg_calls_to "$CG_OUT" ws_send_text_parts) # every text message, Transitions included
  per_push=$(($(cg_incl "$CG_OUT" session_flush) / (sends > 0 ? sends : 1)))
  result "f3. shared execution, $CG_SESSIONS identical subs" \
    "$me_calls users:me runs in all (1 at subscribe + 1 after the grant is right); $per_push instructions per message pushed (session_flush over $sends messages; the value is serialized once per version and shared)" "$rerun"
}
