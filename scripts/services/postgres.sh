#!/usr/bin/env bash
# Start a throwaway PostgreSQL 15 for the tests and print where it is.
#
# Idempotent: installs postgresql-15 with apt-get when it is missing (root only), creates a
# cluster under .services/postgres/ (gitignored) on first use, starts it on 127.0.0.1:PORT
# unless it is already running, and prints one line for the caller to export:
#
#   TENANTOPS_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:55432/postgres
#
# Progress goes to stderr, so `line=$(scripts/services/postgres.sh) && export "$line"` works.
# If TENANTOPS_TEST_POSTGRES_URL is already set, that server is used and nothing is started.
# Environment: TENANTOPS_PG_PORT (default 55432), TENANTOPS_PG_DIR (default .services/postgres).
set -euo pipefail
cd "$(dirname "$0")/../.."

# shellcheck source=scripts/services/lib.sh
. scripts/services/lib.sh

if [ -n "${TENANTOPS_TEST_POSTGRES_URL:-}" ]; then
  say "postgres: using TENANTOPS_TEST_POSTGRES_URL from the environment"
  printf 'TENANTOPS_TEST_POSTGRES_URL=%s\n' "$TENANTOPS_TEST_POSTGRES_URL"
  exit 0
fi

PORT=${TENANTOPS_PG_PORT:-55432}
DIR=${TENANTOPS_PG_DIR:-$PWD/.services/postgres}
BIN=/usr/lib/postgresql/15/bin

if [ ! -x "$BIN/postgres" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "postgres: PostgreSQL 15 is not installed and installing it needs root;"
    say "  run 'apt-get install postgresql-15' as root, or set TENANTOPS_TEST_POSTGRES_URL"
    exit 1
  fi
  say "postgres: installing postgresql-15 with apt-get"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >&2
fi

# initdb and postgres refuse to run as root; as root, the cluster belongs to 'postgres'.
if [ "$(id -u)" -eq 0 ]; then
  as_owner() { runuser -u postgres -- "$@"; }
  mkdir -p "$DIR"
  chown postgres:postgres "$DIR"
else
  as_owner() { "$@"; }
  mkdir -p "$DIR"
fi
chmod 700 "$DIR"

DATA=$DIR/data
if [ -f "$DATA/PG_VERSION" ] && [ "$(cat "$DATA/PG_VERSION")" != "15" ]; then
  say "postgres: $DATA holds a PostgreSQL $(cat "$DATA/PG_VERSION") cluster; recreating it for 15"
  as_owner "$BIN/pg_ctl" -D "$DATA" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$DATA"
fi
if [ ! -f "$DATA/PG_VERSION" ]; then
  say "postgres: creating a cluster in $DATA"
  # Trust on loopback only: this server exists for the test suite and listens nowhere else.
  as_owner "$BIN/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --no-sync >/dev/null
fi

# Only the admin role 'postgres' is trusted (the tests' admin URL has no password); every
# other role signs in with its password (SCRAM), so the tests check tenants' passwords.
HBA='local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256'
if [ "$(cat "$DATA/pg_hba.conf" 2>/dev/null)" != "$HBA" ]; then
  printf '%s\n' "$HBA" | as_owner tee "$DATA/pg_hba.conf" >/dev/null
  as_owner "$BIN/pg_ctl" -D "$DATA" reload >/dev/null 2>&1 || true
fi

if as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
  say "postgres: already running in $DATA"
else
  say "postgres: starting on 127.0.0.1:$PORT"
  as_owner "$BIN/pg_ctl" -D "$DATA" -l "$DIR/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=off -c max_connections=200" \
    start >/dev/null
fi

URL="postgresql://postgres@127.0.0.1:$PORT/postgres"
for _ in $(seq 1 50); do
  if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
    printf 'TENANTOPS_TEST_POSTGRES_URL=%s\n' "$URL"
    exit 0
  fi
  sleep 0.2
done
say "postgres: the server did not accept connections on 127.0.0.1:$PORT; see $DIR/postgres.log"
exit 1
