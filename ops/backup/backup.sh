#!/usr/bin/env bash
# Backs up the C2 database: one pg_dump custom-format archive of the C2 schema, plus a manifest
# (checksum, schema, server version, event stream position at the start of the dump).
#
#   ops/backup/backup.sh [-o DIR] [-n SCHEMA]
#
# Environment: DATABASE_URL (required; libpq URL, e.g. postgres://e4c2@db:5432/e4c2),
# E4C2_DB_SCHEMA (default public). Writes DIR/e4c2-<UTC time>.dump and .manifest.json (a second
# backup within the same second: e4c2-<UTC time>-2.dump, and so on); prints the dump's path. The
# dump holds every key sealed under the KEK, never in clear: keep the KEK (key file, passphrase,
# Vault or HSM) backed up separately, and restores need it (docs/operations.md).
#
# pg_dump takes a consistent snapshot while the C2 keeps running; nothing needs stopping.
set -euo pipefail

usage() {
  echo "usage: $0 [-o DIR] [-n SCHEMA]   (DATABASE_URL in the environment)" >&2
  exit 2
}

out_dir="."
schema="${E4C2_DB_SCHEMA:-public}"
while getopts "o:n:h" opt; do
  case "$opt" in
    o) out_dir="$OPTARG" ;;
    n) schema="$OPTARG" ;;
    *) usage ;;
  esac
done
[[ -n "${DATABASE_URL:-}" ]] || { echo "backup: DATABASE_URL is not set" >&2; exit 2; }
# shellcheck source=ops/backup/pg-url.sh
. "$(dirname "${BASH_SOURCE[0]}")/pg-url.sh"
# The dump holds every sealed key: readable by its owner only.
umask 077
[[ "$schema" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || { echo "backup: bad schema name: $schema" >&2; exit 2; }
mkdir -p "$out_dir"

# Names are stamped to the second; a second backup within the same second (a retry, two cron
# entries) gets a suffix rather than sharing the first one's work file or replacing its dump.
# The work file is created exclusively (noclobber), and a finished dump of the name is looked for
# after that, so two backups never hold the same name whatever their timing (mv is atomic).
claim() {
  (set -o noclobber; : >"$1.dump.partial") 2>/dev/null || return 1
  if [[ -e "$1.dump" ]]; then
    rm -f "$1.dump.partial"
    return 1
  fi
}
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
base="$out_dir/e4c2-$stamp"
n=1
until claim "$base"; do
  n=$((n + 1))
  ((n <= 100)) || { echo "backup: cannot create a dump file in $out_dir (e4c2-$stamp*)" >&2; exit 1; }
  base="$out_dir/e4c2-$stamp-$n"
done
dump="$base.dump"
manifest="$base.manifest.json"
partial="$dump.partial"
trap 'rm -f "$partial"' EXIT

# A lower bound of what the dump holds (read before the dump's snapshot is taken).
event_seq="$(psql "$DATABASE_URL" -XtAq -v ON_ERROR_STOP=1 \
  -c "SELECT last_seq FROM \"$schema\".event_stream")" || {
  echo "backup: cannot read $schema.event_stream (is DATABASE_URL right, is the schema migrated?)" >&2
  exit 1
}
server_version="$(psql "$DATABASE_URL" -XtAq -c 'SHOW server_version')"

pg_dump "$DATABASE_URL" --format=custom --compress=6 --no-owner --no-privileges \
  --schema="$schema" --file="$partial"
# A listing that pg_restore can read proves the archive is complete.
pg_restore --list "$partial" >/dev/null
mv "$partial" "$dump"
sha="$(sha256sum "$dump" | cut -d' ' -f1)"
cat >"$manifest" <<JSON
{
  "file": "$(basename "$dump")",
  "sha256": "$sha",
  "schema": "$schema",
  "createdAt": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "serverVersion": "$server_version",
  "eventSeqAtStart": "$event_seq"
}
JSON
echo "$dump"
