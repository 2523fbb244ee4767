#!/usr/bin/env bash
# run.sh — builds the libFuzzer targets of tests/fuzz/ with clang
# (-fsanitize=fuzzer,address,undefined) and runs each for SECONDS (default
# 20) from a corpus seeded with tests/fuzz/seeds/<target>/.
#
#   bash tests/fuzz/run.sh [SECONDS] [TARGET…]
#
# The project's sources are compiled once into a library (objects in
# $FUZZ_BUILD_DIR/obj, rebuilt only when a source is newer), then linked
# into each target. A crash, a leak, a failed assertion or a timeout fails
# the run and leaves the input in $FUZZ_BUILD_DIR/crash_<target>_*.
# The targets:
#   wire    argument values (wire_args) and every function's validator
#   jwt     bearer tokens: decoding, verification, identity
#   jwks    JWKS and OpenID discovery documents
#   import  the lines of an import file
#   doc     stored document bytes (doc_codec) and their index keys (key_codec)
#   backup  a backup archive as `dojo restore` unpacks it (ustar, manifest)
#   http    raw bytes on a connection to a real server
#   ws      raw WebSocket frames after a valid upgrade
#   sync    sequences of sync-protocol messages on one session
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-20}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(wire jwt jwks import doc backup http ws sync)
out="${FUZZ_BUILD_DIR:-build-fuzz}"
mkdir -p "$out/obj"
cflags=($(pkg-config --cflags libpq libuv jansson openssl libcurl sqlite3) -std=c17 -g -O1
        -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
        -D_GNU_SOURCE -Isrc -Itests/fuzz)
libs=($(pkg-config --libs jansson openssl libcurl sqlite3 libuv libpq) -lhttp_parser -lwslay -lm -lpthread)

# The dashboard's files, as the CMake build embeds them.
assets="$(cd "$out" && pwd)/dashboard_assets.c"
cmake -DDIR="$PWD/web/dashboard" -DOUT="$assets" -P cmake/embed_files.cmake >/dev/null

sources=(src/base/*.c src/net/*.c src/proto/*.c src/auth/*.c src/engine/*.c src/store/*.c src/backup/*.c
         src/app/*.c src/codegen/*.c src/cli/export_format.c "$assets")
# A makefile compiles what changed (headers tracked with -MMD), in parallel.
objs=()
{
  for src in "${sources[@]}"; do
    obj="$out/obj/$(echo "$src" | tr '/' '_').o"
    objs+=("$obj")
    printf '%s: %s\n\tclang $(CFLAGS) -MMD -MP -c %s -o %s\n' "$obj" "$src" "$src" "$obj"
  done
  printf 'all: %s\n' "${objs[*]}"
  printf -- '-include %s/obj/*.d\n' "$out"
} > "$out/objects.mk"
make -s -f "$out/objects.mk" -j "$(nproc)" CFLAGS="${cflags[*]} -DDOJO_VERSION='\"fuzz\"'" all
rm -f "$out/libdojo_fuzz.a"
ar rcs "$out/libdojo_fuzz.a" "${objs[@]}"

link_flags=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)
for target in "${targets[@]}"; do
  extra=()
  case "$target" in http | ws | sync) extra=(tests/fuzz/harness.c) ;; esac
  clang "${cflags[@]/-fsanitize=fuzzer-no-link,address,undefined/}" "${link_flags[@]}" \
    "tests/fuzz/fuzz_$target.c" "${extra[@]}" "$out/libdojo_fuzz.a" "${libs[@]}" -o "$out/fuzz_$target"
done

for target in "${targets[@]}"; do
  mkdir -p "$out/corpus_$target"
  cp -n tests/fuzz/seeds/"$target"/* "$out/corpus_$target/" 2>/dev/null || true
  dict=()
  [ -f "tests/fuzz/dict/$target.dict" ] && dict=(-dict="tests/fuzz/dict/$target.dict")
  echo "fuzz_$target: ${seconds}s"
  status=0
  "$out/fuzz_$target" -max_total_time="$seconds" -max_len=65536 -timeout=20 -rss_limit_mb=4096 \
    -print_final_stats=1 "${dict[@]}" -artifact_prefix="$out/crash_${target}_" "$out/corpus_$target" \
    > "$out/fuzz_$target.log" 2>&1 || status=$?
  grep -E "cov: .*corp" "$out/fuzz_$target.log" | tail -1 || true
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)" "$out/fuzz_$target.log" || true
  if [ "$status" -ne 0 ]; then
    tail -60 "$out/fuzz_$target.log"
    echo "fuzz_$target FAILED (exit $status); the input is in $out/crash_${target}_*"
    exit 1
  fi
done
