# Sourced by backup.sh and restore.sh: moves the password of DATABASE_URL (in its user info, or
# a `password=` query parameter) into PGPASSWORD, which libpq reads, so that no psql, pg_dump or
# pg_restore command line (visible to every user in ps) carries it. Percent-encoded passwords are
# decoded; every other character, backslashes included, is taken as it is.

# Decodes %XX sequences of $1 into the variable named $2 (a `%` not followed by two hex digits
# stays as it is). No printf %b: it would read the password's own backslashes as escapes.
pg_url_decode() {
  local s="$1" out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    if [[ "$c" == "%" && "${s:i+1:2}" =~ ^[0-9A-Fa-f]{2}$ ]]; then
      printf -v c "\\x${s:i+1:2}"
      i=$((i + 2))
    fi
    out+="$c"
  done
  printf -v "$2" '%s' "$out"
}

# (The matches are copied first: the decoder's own tests overwrite BASH_REMATCH.)
if [[ "${DATABASE_URL:-}" =~ ^(postgres(ql)?://[^:/@]*):([^@]*)@(.*)$ ]]; then
  pg_url_parts=("${BASH_REMATCH[@]}")
  DATABASE_URL="${pg_url_parts[1]}@${pg_url_parts[4]}"
  pg_url_decode "${pg_url_parts[3]}" PGPASSWORD
  export PGPASSWORD
fi
if [[ "${DATABASE_URL:-}" =~ ^([^?]*\?(.*&)?)password=([^&]*)(&(.*))?$ ]]; then
  pg_url_parts=("${BASH_REMATCH[@]}")
  DATABASE_URL="${pg_url_parts[1]}${pg_url_parts[5]}"
  DATABASE_URL="${DATABASE_URL%[?&]}"
  pg_url_decode "${pg_url_parts[3]}" PGPASSWORD
  export PGPASSWORD
fi
unset pg_url_parts
