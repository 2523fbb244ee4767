#!/usr/bin/env bash
# gen-man.sh — writes the dojo(1) man page (roff) to stdout, generated from
# the binary's own --help output, so the page says exactly what the program
# says: `dojo --help` becomes the synopsis and command list, and each
# `dojo <command> --help` a section of its own.
#   packaging/gen-man.sh path/to/dojo > dojo.1
set -euo pipefail
bin=${1:?usage: gen-man.sh path/to/dojo}
version=$("$bin" --version | awk '{print $2}')
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%d)

# Text → roff: backslashes doubled, lines starting with . or ' escaped,
# leading spaces kept (.nf blocks).
roff_text() {
  sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/" -e 's/—/\\(em/g' -e 's/…/.../g'
}

# The command names, from the "Commands:" list of `dojo --help`.
commands=$("$bin" --help | awk '/^Commands:/ {on=1; next} on && /^  [a-z]/ {print $1} on && /^$/ {on=0}')

cat <<ROFF
.TH DOJO 1 "$date" "dojo $version" "User Commands"
.SH NAME
dojo \\- the realtime backend of Karate AI
.SH SYNOPSIS
.B dojo
.I command
.RI [ options ]
.SH DESCRIPTION
One binary that stores users, workflows, generation runs and a credit ledger
(SQLite or PostgreSQL), verifies Clerk JWTs, runs queries and mutations as
serializable transactions, and pushes changes to clients over the Convex
wire protocol. The output of
.B dojo \\-\\-help
follows.
.PP
.nf
ROFF
"$bin" --help | roff_text
echo ".fi"
echo ".SH COMMANDS"
for c in $commands; do
  echo ".SS dojo $c"
  echo ".nf"
  "$bin" "$c" --help 2>&1 | roff_text
  echo ".fi"
done
cat <<ROFF
.SH FILES
.TP
.I /etc/dojo/dojo.env
the service's environment: DOJO_ADMIN_KEY, DOJO_LISTEN, DOJO_DB, DOJO_OPTIONS
.TP
.I /var/lib/dojo
the service's state: the SQLite database, its files directory, backups
.SH SEE ALSO
.BR systemctl (1),
.BR journalctl (1)
ROFF
