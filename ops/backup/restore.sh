#!/usr/bin/env bash
# Restores a backup made by backup.sh into a database (docs/operations.md, "Restore").
#
#   ops/backup/restore.sh -f FILE.dump [--clean] [--ignore-connected] [--force]
#
# Environment: DATABASE_URL (required) names the target database; the schema is the one that was
# dumped. The checksum is verified against the manifest beside the dump (a warning when there is
# none). Without --clean the target schema must hold no tables (a restore never merges into live
# data; an empty schema made beforehand is used as it is); with --clean it is dropped first. The
# drop and the whole restore are one transaction: on any error the target is left as it was.
# A database that C2 nodes are connected to is refused (stop them first; --ignore-connected skips
# this check alone, for nodes of another deployment sharing the database under another schema:
# PostgreSQL cannot tell which schema a connection uses), and so is a --clean that would drop more
# than the C2's own tables (--force skips both checks).
#
# The restored database is marked (setting restore_pending): C2 nodes deliver nothing from it
# until the reconciliation below clears the mark, since its keys can be older than the devices'.
#
# Exit status: 0 restored; 1 refused or failed (the target is then as it was: the message says
# why); 2 usage (flags, a missing file, DATABASE_URL unset). Progress goes to stderr.
#
# After the restore, and before devices and users are let back in, run
#   e4c2 restore-reconcile --archive <off-site event archive>
# (topic keys rotated after the backup, unreachable devices, event positions: see the runbook).
set -euo pipefail

usage() {
  echo "usage: $0 -f FILE.dump [--clean] [--ignore-connected] [--force]   (DATABASE_URL in the environment)" >&2
  exit 2
}

file=""
clean=0
force=0
ignore_connected=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    -f) [[ $# -ge 2 ]] || usage; file="$2"; shift 2 ;;
    --clean) clean=1; shift ;;
    --force) force=1; shift ;;
    --ignore-connected) ignore_connected=1; shift ;;
    *) usage ;;
  esac
done
[[ -n "$file" ]] || usage
[[ -f "$file" ]] || { echo "restore: no such file: $file" >&2; exit 2; }
[[ -n "${DATABASE_URL:-}" ]] || { echo "restore: DATABASE_URL is not set" >&2; exit 2; }
# shellcheck source=ops/backup/pg-url.sh
. "$(dirname "${BASH_SOURCE[0]}")/pg-url.sh"

manifest="${file%.dump}.manifest.json"
if [[ -f "$manifest" ]]; then
  expected="$(sed -n 's/.*"sha256": *"\([0-9a-f]*\)".*/\1/p' "$manifest")"
  actual="$(sha256sum "$file" | cut -d' ' -f1)"
  if [[ "$expected" != "$actual" ]]; then
    echo "restore: checksum mismatch for $file (manifest $expected, file $actual)" >&2
    exit 1
  fi
else
  echo "restore: warning: no manifest beside $file; checksum not verified" >&2
fi

unreadable() {
  echo "restore: cannot read $file as a pg_dump archive (truncated or not a dump?); nothing was changed" >&2
  exit 1
}
listing="$(pg_restore --list "$file")" || unreadable
# The schema the archive holds (its CREATE SCHEMA entry, or public).
schema="$(printf '%s\n' "$listing" | sed -n 's/^[0-9]*; [0-9]* [0-9]* SCHEMA - \([A-Za-z0-9_]*\) .*/\1/p' | head -n1)"
schema="${schema:-public}"

# C2 nodes (application_name e4c2-<node id>) still using the target would keep delivering from
# what the restore replaces, and on from the restored state with nothing paused in between.
nodes="$(psql "$DATABASE_URL" -XtAq -v ON_ERROR_STOP=1 -c "SELECT string_agg(DISTINCT application_name, ', ')
  FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND application_name LIKE 'e4c2%'")"
if [[ -n "$nodes" ]]; then
  if [[ "$force" != "1" && "$ignore_connected" != "1" ]]; then
    echo "restore: C2 nodes are connected to this database ($nodes): stop every node first (docs/operations.md, Restore); if they belong to another deployment on another schema of this database, pass --ignore-connected" >&2
    exit 1
  fi
  echo "restore: warning: C2 nodes are connected to this database ($nodes); going on as asked" >&2
fi

tables="$(psql "$DATABASE_URL" -XtAq -v ON_ERROR_STOP=1 \
  -c "SELECT count(*) FROM pg_tables WHERE schemaname = '$schema'")"
present="$(psql "$DATABASE_URL" -XtAq -v ON_ERROR_STOP=1 \
  -c "SELECT count(*) FROM pg_namespace WHERE nspname = '$schema'")"
drop="SELECT 1" # what runs first, in the restore's own transaction
keep_schema=0   # the schema exists and stays: leave its CREATE SCHEMA entry out
if [[ "$tables" != "0" ]]; then
  if [[ "$clean" != "1" ]]; then
    echo "restore: schema $schema already has $tables tables; use --clean to replace it" >&2
    exit 1
  fi
  # --clean drops the schema with everything in it, and every view elsewhere built on it: refused
  # when that is more than the C2's own tables (another application's data in public, a report
  # view), unless --force.
  dumped="$(pg_restore --list "$file" | sed -n -E "s/^[0-9]+; [0-9]+ [0-9]+ (TABLE|VIEW|MATERIALIZED VIEW|FOREIGN TABLE) $schema ([^ ]+) .*/\2/p" | sort -u)"
  found="$(psql "$DATABASE_URL" -XtAq -v ON_ERROR_STOP=1 -c "SELECT c.relname FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = '$schema' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY 1")"
  foreign="$(comm -13 <(printf '%s\n' "$dumped") <(printf '%s\n' "$found" | sort -u) | sed '/^$/d' | sed "s/^/$schema./")"
  dependents="$(psql "$DATABASE_URL" -XtAq -v ON_ERROR_STOP=1 -c "SELECT DISTINCT dn.nspname || '.' || dc.relname
    FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
    JOIN pg_class dc ON dc.oid = r.ev_class JOIN pg_namespace dn ON dn.oid = dc.relnamespace
    JOIN pg_class c ON c.oid = d.refobjid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE d.classid = 'pg_rewrite'::regclass AND n.nspname = '$schema' AND dn.nspname <> '$schema'")"
  others="$(printf '%s\n%s\n' "$foreign" "$dependents" | sed '/^$/d' | paste -sd, - | sed 's/,/, /g')"
  if [[ -n "$others" && "$force" != "1" ]]; then
    echo "restore: --clean would also drop what is not the C2's: $others; move it elsewhere first, or pass --force" >&2
    exit 1
  fi
  if [[ "$schema" == "public" ]]; then
    drop='DROP SCHEMA public CASCADE; CREATE SCHEMA public'
    keep_schema=1
  else
    drop="DROP SCHEMA \"$schema\" CASCADE"
  fi
elif [[ "$present" != "0" ]]; then
  # Empty, made beforehand (public, or by a DBA for a role that may not create schemas).
  keep_schema=1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [[ "$keep_schema" == "1" ]]; then
  pg_restore --list "$file" | grep -v -E " SCHEMA - $schema |COMMENT - SCHEMA $schema " >"$tmp/list"
else
  pg_restore --list "$file" >"$tmp/list"
fi
echo "restore: reading $file ($(du -h "$file" | cut -f1))" >&2
pg_restore --no-owner --no-privileges --use-list="$tmp/list" -f "$tmp/restore.sql" "$file" || unreadable
echo "restore: restoring schema $schema in one transaction ($(du -h "$tmp/restore.sql" | cut -f1) of SQL)" >&2
# Marks the restored database: nodes deliver nothing until restore-reconcile clears it. What an
# earlier disaster's reconciliation kept (in the backup, if taken after it) is forgotten.
# The mark holds the restored event position: the reconciliation judges the off-site archive
# against it (what the archive has after it happened after the backup).
mark="DELETE FROM \"$schema\".c2_settings
    WHERE name IN ('restore_position', 'restore_floor', 'restore_first_reconciled_at');
  INSERT INTO \"$schema\".c2_settings (name, value)
    SELECT 'restore_pending', coalesce((SELECT max(last_seq) FROM \"$schema\".event_stream), 0)::text
  ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value"
# One transaction for the drop, the whole restore and the mark: if anything fails (a lost
# connection, a full disk), the old schema is still there, untouched.
if ! psql "$DATABASE_URL" -Xq -v ON_ERROR_STOP=1 --single-transaction -c "$drop" -f "$tmp/restore.sql" \
  -c "$mark" >/dev/null; then
  echo "restore: failed (psql's message above); the transaction was rolled back: the target is as it was" >&2
  exit 1
fi
tables="$(psql "$DATABASE_URL" -XtAq -c "SELECT count(*) FROM pg_tables WHERE schemaname = '$schema'")"
echo "restored schema $schema ($tables tables) from $file"
echo "deliveries are paused until: e4c2 restore-reconcile --archive <off-site event archive>"
