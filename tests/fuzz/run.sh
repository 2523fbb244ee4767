#!/usr/bin/env bash
# run.sh — builds the libFuzzer targets of tests/fuzz/ with clang
# (-fsanitize=fuzzer,address,undefined) against the project's sources and
# runs each for SECONDS (default 20) from its corpus directory.
#   bash tests/fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-20}"
out="${FUZZ_BUILD_DIR:-build-fuzz}"
mkdir -p "$out"
flags=($(pkg-config --cflags libpq) -std=c17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -D_GNU_SOURCE -DDOJO_VERSION='"fuzz"' -Isrc)
libs=$(pkg-config --libs jansson openssl libcurl sqlite3 libuv libpq)
core=(src/base/*.c src/engine/*.c src/store/*.c src/app/*.c src/auth/*.c src/proto/wire.c)
for target in wire jwt; do
  clang "${flags[@]}" "tests/fuzz/fuzz_$target.c" "${core[@]}" $libs -lm -lpthread -o "$out/fuzz_$target"
  mkdir -p "$out/corpus_$target"
  cp -n tests/fuzz/seeds/"$target"/* "$out/corpus_$target/" 2>/dev/null || true
  echo "fuzz_$target: ${seconds}s"
  status=0
  "$out/fuzz_$target" -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$out/crash_${target}_" "$out/corpus_$target" > "$out/fuzz_$target.log" 2>&1 || status=$?
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done)" "$out/fuzz_$target.log" || true
  if [ "$status" -ne 0 ]; then
    tail -60 "$out/fuzz_$target.log"
    echo "fuzz_$target FAILED (exit $status); the input is in $out/crash_${target}_*"
    exit 1
  fi
done
