#!/usr/bin/env bash
# check-untrusted-json.sh — keeps the rule of src/base/jread.h: the code that
# reads JSON dojo did not write itself (client messages and HTTP requests in
# src/net and src/proto, tokens, discovery and JWKS documents in src/auth,
# import files and server answers in src/cli, other nodes' notices in
# src/engine/notice.c) reads every field through the typed readers
# (jr_string, jr_int, …), never through jansson's accessors, which hand back
# NULL or 0 for a wrong type and let a hostile value crash the server.
# Building JSON (json_pack, json_object_set…) is fine; so are the type tests
# (json_is_*), which cannot crash. proto/wire.c is itself the typed decoder
# of argument values, fuzzed on its own (tests/fuzz/fuzz_wire.c).
# Exit 0 when the rule holds; otherwise print each offending line.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(ls src/net/*.c src/proto/*.c src/auth/*.c src/cli/*.c src/engine/notice.c | grep -v '^src/proto/wire\.c$')
accessors='json_object_get|json_object_getn|json_array_get|json_string_value|json_string_length|json_integer_value|json_real_value|json_number_value|json_boolean_value|json_is_true|json_is_false|json_unpack|json_unpack_ex|json_vunpack_ex|json_object_iter_value'
if grep -n -E "\b($accessors)\s*\(" $files; then
  echo "check-untrusted-json: read these fields through src/base/jread.h (see its header)" >&2
  exit 1
fi
echo "check-untrusted-json: every untrusted field is read through src/base/jread.h"
