#!/usr/bin/env bash
# format.sh — dojo's C sources in the committed .clang-format style.
#
#   scripts/format.sh          reformats every tracked C file in place
#   scripts/format.sh --check  changes nothing; lists the files that differ
#                              and exits 1 when there is one (a ctest test)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null 2>&1 || {
  echo "format.sh: clang-format is missing (scripts/install-deps.sh installs it)" >&2
  exit 1
}
mapfile -t files < <(git ls-files 'src/*.c' 'src/*.h' 'tests/unit/*.c' 'tests/unit/*.h' 'tests/fuzz/*.c')
if [ "${1:-}" = "--check" ]; then
  bad=0
  for f in "${files[@]}"; do
    if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
      echo "format.sh: $f is not formatted (run scripts/format.sh)"
      bad=1
    fi
  done
  [ "$bad" -eq 0 ] && echo "format.sh: ${#files[@]} files formatted"
  exit "$bad"
fi
clang-format -i "${files[@]}"
