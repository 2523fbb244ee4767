#!/usr/bin/env bash
# files.sh — the benchmarks of stored files and the generation worker
# (api.md §9, §10), each beside a reference measured in the same run:
#
#   g. pick-up latency: runs:create sent → the worker's command started,
#      `dojo worker` on the same machine, the worker idle (p50, p90, max)
#   h. downloads of one stored 5 MiB image at 64 connections (wrk, 2
#      threads): dojo's GET /api/storage/<id> (sendfile from the directory
#      store) against nginx serving the same bytes from disk (a worker
#      process per core, sendfile on) — interleaved, dojo then nginx, REPS times, so
#      that both see the same machine; each repetition's figures are printed,
#      and the ratio of the medians.
#
# Usage: bash bench/files.sh        (about 1.5 minutes on 2 cores)
# Knobs: REPS (3), PICKUP_RUNS (40), WRK_SECONDS (8), BENCH_KEEP=1 keeps the
# temp dir. Installs wrk and nginx when missing (apt-get, as root). Builds
# dojo optimised (scripts/build.sh). Results go to bench/results/files.txt.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
# shellcheck source=lib/common.sh
. "$BENCH_DIR/lib/common.sh"

REPS=${REPS:-3}
PICKUP_RUNS=${PICKUP_RUNS:-40}
WRK_SECONDS=${WRK_SECONDS:-8}
FILE_BYTES=$((5 * 1024 * 1024))

need_pkg() { # command package
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "bench: installing $2" >&2
  [ "$(id -u)" -eq 0 ] || die "$1 is missing: apt-get install $2 (as root)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null; } ||
    die "cannot install $2"
}
need_pkg wrk wrk
need_pkg nginx nginx-light
need_pkg convert imagemagick
NGINX=$(command -v nginx)

"$ROOT/scripts/build.sh" >/dev/null
WORK=$(mktemp -d /tmp/dojo-bench-files.XXXXXX)
DOJO_BIN="$WORK/dojo"
cp "$ROOT/build/dojo" "$DOJO_BIN"
mkdir -p "$BENCH_DIR/results"
BENCH_RESULTS="$BENCH_DIR/results/files.txt"
: >"$BENCH_RESULTS"
trap bench_cleanup EXIT
ADMIN_KEY="bench-admin-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
WORKER_KEY="bench-worker-$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
ISSUER_URL="http://127.0.0.1:1" # no tokens here: the admin key acts as the users
export WORKER_KEY BENCH_STRACE=0

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

start_dojo files "sqlite:$WORK/files/dojo.db"
note "dojo at $SRV_URL"

# --- g. pick-up latency ---------------------------------------------------------
MARKS="$WORK/marks"
mkdir -p "$MARKS"
cat >"$WORK/mark.sh" <<SH
#!/bin/sh
date +%s%N >"$MARKS/\$DOJO_RUN_ID"
echo https://bench.example/\$DOJO_RUN_ID.png
SH
chmod +x "$WORK/mark.sh"
DOJO_WORKER_KEY="$WORKER_KEY" "$DOJO_BIN" worker --url "$SRV_URL" --exec "$WORK/mark.sh" \
  2>"$WORK/worker.log" &
WORKER_PID=$!
BENCH_PIDS+=("$WORKER_PID")
wait_for_line "$WORK/worker.log" 'connected to' "$WORKER_PID" 20 >/dev/null
all="$WORK/pickup-all.txt"
: >"$all"
for rep in $(seq "$REPS"); do
  node "$BENCH_DIR/pickup.mjs" "$SRV_URL" "$ADMIN_KEY" "$MARKS" "$PICKUP_RUNS" >"$WORK/pickup-$rep.json"
  node -e '
    const l = JSON.parse(require("fs").readFileSync(process.argv[1])).latencies_ms.sort((a, b) => a - b);
    const q = (p) => l[Math.min(l.length - 1, Math.floor(p * l.length))];
    console.log(`${q(0.5).toFixed(2)} ${q(0.9).toFixed(2)} ${l.at(-1).toFixed(2)} ${l.length}`);
    for (const v of l) process.stderr.write(`${v}\n`);
  ' "$WORK/pickup-$rep.json" >"$WORK/pickup-$rep.txt" 2>>"$all"
  read -r p50 p90 max n <"$WORK/pickup-$rep.txt"
  detail "pick-up repetition $rep: p50 $p50 ms, p90 $p90 ms, max $max ms ($n runs)"
done
read -r P50 P90 MAX N <<<"$(sort -n "$all" | awk '{ a[NR] = $1 } END { printf "%.2f %.2f %.2f %d", a[int(NR * 0.5) + 1], a[int(NR * 0.9) + 1], a[NR], NR }')"
result "g. worker pick-up, create → command start" \
  "p50 $P50 ms, p90 $P90 ms, max $MAX ms ($N runs in $REPS repetitions; target p50 ≤ 100 ms)" \
  "bash bench/files.sh"
stop_pid "$WORKER_PID"

# --- h. 5 MiB downloads: dojo against nginx ---------------------------------------
head -c $((FILE_BYTES - 8)) /dev/urandom >"$WORK/body.bin"
{ printf '\x89PNG\r\n\x1a\n'; cat "$WORK/body.bin"; } >"$WORK/image.png"
answer=$(curl -sS --fail -X POST -H "Authorization: Convex $ADMIN_KEY" -H 'Content-Type: image/png' \
  --data-binary "@$WORK/image.png" "$SRV_URL/api/storage/upload")
STORAGE_ID=$(printf '%s' "$answer" | sed -n 's/.*"storageId":"\([0-9a-z]*\)".*/\1/p')
[ -n "$STORAGE_ID" ] || die "upload failed: $answer"
curl -sS --fail -o "$WORK/check.png" "$SRV_URL/api/storage/$STORAGE_ID"
cmp -s "$WORK/check.png" "$WORK/image.png" || die "dojo served other bytes"

mkdir -p "$WORK/www" "$WORK/nginx"
cp "$WORK/image.png" "$WORK/www/image.png"
chmod o+rx "$WORK" "$WORK/www" && chmod o+r "$WORK/www/image.png" # nginx's workers run as www-data
NGINX_PORT=$((20000 + RANDOM % 20000))
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path $WORK/nginx;
  proxy_temp_path $WORK/nginx;
  fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx;
  scgi_temp_path $WORK/nginx;
  types { image/png png; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $WORK/www;
  }
}
CONF
"$NGINX" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
NGINX_PID=$!
BENCH_PIDS+=("$NGINX_PID")
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/image.png" && break; sleep 0.1; done
curl -sS --fail -o "$WORK/check2.png" "http://127.0.0.1:$NGINX_PORT/image.png"
cmp -s "$WORK/check2.png" "$WORK/image.png" || die "nginx served other bytes"

# wrk's req/s and transfer rate of one 8 s run against URL.
download_run() { # label url
  wrk -t2 -c64 -d"${WRK_SECONDS}s" --latency "$2" >"$WORK/wrk-$1.txt" 2>&1 || die "wrk failed: $(cat "$WORK/wrk-$1.txt")"
  awk '
    function mib(v) {
      if (v ~ /GB$/) return substr(v, 1, length(v) - 2) * 1024
      if (v ~ /MB$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /KB$/) return substr(v, 1, length(v) - 2) / 1024
      return v / 1048576
    }
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
      return v + 0
    }
    /^Requests\/sec:/ { rps = $2 }
    /^Transfer\/sec:/ { rate = mib($2) }
    $1 == "50%" { p50 = ms($2) }
    /Non-2xx or 3xx responses:/ { bad = $NF }
    /Socket errors:/ { errs = 1 }
    END { printf "%.1f %.0f %.2f %d %d\n", rps, rate, p50, bad + 0, errs + 0 }
  ' "$WORK/wrk-$1.txt"
}

: >"$WORK/dojo-rps"
: >"$WORK/nginx-rps"
for rep in $(seq "$REPS"); do
  read -r d_rps d_rate d_p50 d_bad d_err <<<"$(download_run "dojo-$rep" "$SRV_URL/api/storage/$STORAGE_ID")"
  [ "$d_bad" -eq 0 ] || die "dojo answered $d_bad non-2xx responses (see $WORK/wrk-dojo-$rep.txt)"
  read -r n_rps n_rate n_p50 n_bad n_err <<<"$(download_run "nginx-$rep" "http://127.0.0.1:$NGINX_PORT/image.png")"
  [ "$n_bad" -eq 0 ] || die "nginx answered $n_bad non-2xx responses"
  echo "$d_rps" >>"$WORK/dojo-rps"
  echo "$n_rps" >>"$WORK/nginx-rps"
  detail "downloads repetition $rep: dojo $d_rps req/s ($d_rate MiB/s, p50 $d_p50 ms), nginx $n_rps req/s ($n_rate MiB/s, p50 $n_p50 ms)$([ "$d_err$n_err" = 00 ] || echo ', socket errors')"
done
D=$(median <"$WORK/dojo-rps")
N=$(median <"$WORK/nginx-rps")
D_SPREAD=$(sort -n "$WORK/dojo-rps" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s..%s", lo, hi }')
N_SPREAD=$(sort -n "$WORK/nginx-rps" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s..%s", lo, hi }')
RATIO=$(awk -v d="$D" -v n="$N" 'BEGIN { printf "%.2f", d / n }')
result "h. 5 MiB downloads, 64 connections" \
  "dojo $D req/s (spread $D_SPREAD) vs nginx $N req/s ($N_SPREAD): ${RATIO}× nginx, medians of $REPS interleaved runs (target ≥ 0.8×)" \
  "bash bench/files.sh"
stop_pid "$NGINX_PID"
stop_dojo
[ "${BENCH_KEEP:-0}" = 1 ] && note "kept $WORK" || rm -rf "$WORK"
