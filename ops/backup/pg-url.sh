# Sourced by backup.sh and restore.sh: moves the password of DATABASE_URL into PGPASSWORD, which
# libpq reads, so that no psql, pg_dump or pg_restore command line (visible to every user in ps)
# carries it. Percent-encoded passwords are decoded.
if [[ "${DATABASE_URL:-}" =~ ^(postgres(ql)?://[^:/@]*):([^@]*)@(.*)$ ]]; then
  encoded="${BASH_REMATCH[3]}"
  printf -v PGPASSWORD '%b' "${encoded//%/\\x}"
  export PGPASSWORD
  DATABASE_URL="${BASH_REMATCH[1]}@${BASH_REMATCH[4]}"
  unset encoded
fi
