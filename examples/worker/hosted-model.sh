#!/bin/sh
# hosted-model.sh — a `dojo worker` command that asks a hosted image model
# for the picture, over HTTPS with curl. An example to start from: it speaks
# the common "images/generations" shape ({model, prompt, size} in, a list of
# {b64_json} or {url} out) that several providers accept; change the
# request and the parsing for yours.
#
#   export IMAGE_API_KEY=…                                  # your provider's key
#   export IMAGE_API_URL=https://api.example.com/v1/images/generations
#   dojo worker --exec examples/worker/hosted-model.sh --timeout 300
#
# The run's model (DOJO_MODEL) is sent as the provider's model name; map
# your Karate AI model names here if they differ. The picture is written
# to $DOJO_OUTPUT, so dojo stores it (the URLs providers return expire); a
# provider that only returns a URL gets that URL printed instead, and dojo
# records it as the run's output.
#
# Needs curl and jq (Debian: apt-get install curl jq). The key is read from
# the environment only: never put it in the command line.
set -eu

: "${IMAGE_API_KEY:?set IMAGE_API_KEY to your provider's API key}"
: "${IMAGE_API_URL:?set IMAGE_API_URL to the provider's image generation endpoint}"
command -v jq >/dev/null 2>&1 || { echo "hosted-model: jq is not installed" >&2; exit 127; }

size=$(jq -r '.settings.size // "1024x1024"')   # the run's input arrives on stdin
body=$(jq -n --arg model "$DOJO_MODEL" --arg prompt "$DOJO_PROMPT" --arg size "$size" \
  '{model: $model, prompt: $prompt, size: $size, n: 1}')

answer=answer.json
status=$(curl -sS --max-time 280 -o "$answer" -w '%{http_code}' \
  -H "Authorization: Bearer $IMAGE_API_KEY" -H 'Content-Type: application/json' \
  --data "$body" "$IMAGE_API_URL")
if [ "$status" != 200 ]; then
  echo "hosted-model: the provider answered HTTP $status: $(jq -r '.error.message // .error // "?"' "$answer" 2>/dev/null | head -c 300)" >&2
  exit 1
fi

b64=$(jq -r '.data[0].b64_json // empty' "$answer")
if [ -n "$b64" ]; then
  printf '%s' "$b64" | base64 -d >"$DOJO_OUTPUT"
  exit 0
fi
url=$(jq -r '.data[0].url // empty' "$answer")
case "$url" in
  https://*) echo "$url" ;;
  *) echo "hosted-model: the answer held no picture (no data[0].b64_json or url)" >&2; exit 1 ;;
esac
