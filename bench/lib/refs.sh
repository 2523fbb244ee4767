# refs.sh — the reference servers dojo's figures are divided by, and the
# arithmetic of repeated rounds (sourced by bench/run.sh, after common.sh):
# nginx with a static answer (HTTP) or with nchan (WebSocket fan-out),
# started in $WORK, stopped by bench_cleanup; the median and spread of a
# figure over BENCH_REPS rounds.
# shellcheck shell=bash

# Rounds of each interleaved comparison.
reps() { echo "${BENCH_REPS:-3}"; }

# "median (min–max)" of the numbers on stdin, with $1 decimals.
spread() {
  sort -g | awk -v d="${1:-2}" '{ v[NR] = $1 } END {
    if (NR == 0) { print "-"; exit }
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%." d "f (%." d "f–%." d "f)", m, v[1], v[NR] }'
}

# a / b with 4 decimals: one round's ratio to its reference.
ratio_of() {
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", a / b }'
}

# Field $2 of the JSON object $1 (what bench/*.mjs print), with $3 decimals.
json_field() {
  node -e 'console.log(Number(JSON.parse(process.argv[1])[process.argv[2]]).toFixed(Number(process.argv[3])))' "$1" "$2" "$3"
}

# Starts nginx (2 workers, like dojo's 2 cores) in $WORK/$1 serving the
# http{} content $2, in which @PORT@ stands for its port; $3, if given, is
# put before the events{} block (a load_module line). Sets NGINX_PORT,
# NGINX_URL and NGINX_PID.
start_nginx() {
  local name="$1" http_block="$2" preamble="${3:-}" dir="$WORK/$1"
  mkdir -p "$dir/tmp"
  NGINX_PORT=$((20000 + RANDOM % 20000))
  cat >"$dir/nginx.conf" <<EOF_CONF
$preamble
worker_processes 2;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 1000000;
  ${http_block//@PORT@/$NGINX_PORT}
}
EOF_CONF
  nginx -c "$dir/nginx.conf" -p "$dir" >"$dir/stdout.log" 2>&1 &
  NGINX_PID=$!
  BENCH_PIDS+=("$NGINX_PID")
  NGINX_URL="http://127.0.0.1:$NGINX_PORT"
  for _ in $(seq 100); do
    curl -s -o /dev/null "$NGINX_URL/" && return 0
    sleep 0.05
  done
  cat "$dir/error.log" "$dir/stdout.log" >&2
  die "nginx did not start"
}
