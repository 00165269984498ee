#!/usr/bin/env bash
# Keeps an off-site copy of the event stream: appends every event, as one JSON line, to FILE and
# follows the stream live, resuming after the last seq in FILE whenever the connection breaks.
# Run it on a machine outside the C2's failure domain. After a restore from a backup,
# `e4c2 restore-reconcile --archive FILE` uses it to find what the backup does not know: topic
# key versions issued since (rotated above them), identity keys rotated since (those devices are
# unreachable and reported), clients and topics created or removed since (docs/operations.md).
#
#   ops/backup/archive-events.sh FILE [e4c2 connection flags...]
#   e.g. ops/backup/archive-events.sh /srv/e4c2/events.jsonl -e c2.example:5555 --cert ca.pem
#
# E4C2_CLI (default: this checkout's CLI, started with node) is how the CLI is started; the
# script runs from any directory (cron, systemd). The token comes from E4C2_TOKEN or
# --token-file as for any CLI call (a read-only token is enough).
#
# It resumes by itself while the C2 cannot be reached or ends the stream (the CLI's exit 3), and
# stops, so that a supervisor can alert, on what waiting cannot fix: a FILE it cannot write
# (exit 1), flags the CLI refuses (exit 2), the server refusing the stream (exit 1: a token that
# is wrong, revoked or lacks the role).
set -uo pipefail

[[ $# -ge 1 ]] || { echo "usage: $0 FILE [e4c2 connection flags...]" >&2; exit 2; }
file="$1"
shift
# Absolute paths: `npm run` and `--import tsx` resolve from the working directory, and a missing
# package.json there made every stream "end" at once, for ever, with npm's error silenced.
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [[ -n "${E4C2_CLI:-}" ]]; then
  read -r -a cli <<<"$E4C2_CLI"
else
  cli=(node --import "$repo/node_modules/tsx/dist/loader.mjs" "$repo/cli/main.ts")
fi
if ! touch "$file"; then
  echo "archive-events: cannot write $file; stopping" >&2
  exit 1
fi
pause=1
while true; do
  # The last complete line's seq; a line cut by a crash is dropped first.
  if [[ -s "$file" && "$(tail -c1 "$file" | od -An -c | tr -d ' ')" != '\n' ]]; then
    sed -i '$ d' "$file"
  fi
  last="$(tail -n1 "$file" | sed -n 's/.*"seq":"\([0-9]*\)".*/\1/p')"
  last="${last:-0}"
  started=$(date +%s)
  "${cli[@]}" "$@" events --after "$last" --json >>"$file"
  code=$?
  case "$code" in
    1 | 2)
      echo "archive-events: the CLI stopped with exit $code (1: the server refused the stream, 2: bad flags; see its message above); stopping" >&2
      exit "$code"
      ;;
  esac
  echo "archive-events: stream ended (exit $code) after seq $(tail -n1 "$file" | sed -n 's/.*"seq":"\([0-9]*\)".*/\1/p'); resuming" >&2
  # Back off while the stream keeps failing at once; reset after a stream that ran a while.
  if (($(date +%s) - started > 60)); then pause=1; else pause=$((pause < 30 ? pause * 2 : 30)); fi
  sleep "$pause"
done
