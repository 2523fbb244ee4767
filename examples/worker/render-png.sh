#!/bin/sh
# render-png.sh — a `dojo worker` command that turns a run into a picture
# without any network or model: ImageMagick draws the prompt on a gradient
# and writes a 512x512 PNG to $DOJO_OUTPUT. A first worker to try, and the
# one dojo's own tests run:
#
#   dojo worker --exec examples/worker/render-png.sh
#
# The worker runs it in a fresh temporary directory with the run's input as
# JSON on standard input (ignored here) and DOJO_RUN_ID, DOJO_MODEL,
# DOJO_PROMPT and DOJO_OUTPUT in the environment. A non-zero exit fails the
# run with the last line of standard error, and the user is refunded.
#
# Needs ImageMagick (Debian: apt-get install imagemagick).
set -eu

if ! command -v convert >/dev/null 2>&1; then
  echo "render-png: ImageMagick is not installed (apt-get install imagemagick)" >&2
  exit 127
fi

# ImageMagick reads "%…" in text as escapes and "@file" as a file to read:
# the prompt is the user's, so it is drawn literally.
literal() {
  text=$(printf '%s' "$1" | sed 's/%/%%/g')
  case "$text" in @*) text=" $text" ;; esac
  printf '%s' "$text"
}

prompt=$(literal "${DOJO_PROMPT:-}")
[ -n "$prompt" ] || prompt="(no prompt)"
footer=$(literal "${DOJO_MODEL:-?} · run ${DOJO_RUN_ID:-?}")

convert -size 512x512 gradient:'#1e3c72-#2a5298' \
  \( -size 460x -background none -fill white -pointsize 28 -gravity center \
     caption:"$prompt" \) \
  -gravity center -composite \
  -fill '#ffffffb0' -pointsize 13 -gravity south -annotate +0+10 "$footer" \
  "png:$DOJO_OUTPUT"
