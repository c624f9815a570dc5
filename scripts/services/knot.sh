#!/usr/bin/env bash
# Start a throwaway Knot DNS 3.2 primary for the DNS provider tests and print where it is.
#
# Idempotent: installs knot with apt-get when it is missing (root only), generates a TSIG key
# (hmac-sha256) and writes the config under .services/knot/ (gitignored) on first use, starts
# `knotd` on 127.0.0.1:PORT unless it is already running, waits until it answers, and prints
# lines for the caller to export:
#
#   TENANTOPS_TEST_KNOT_PORT=15354
#   TENANTOPS_TEST_KNOT_ZONE=example.test
#   TENANTOPS_TEST_KNOT_TSIG_KEY_NAME=tenantops-test
#   TENANTOPS_TEST_KNOT_TSIG_SECRET_FILE=/abs/path/.services/knot/tsig.secret
#
# The TSIG secret itself is never printed: it stays in a file readable only by its owner.
# Zones: example.test (dynamic updates allowed with the key) and locked.test (no update ACL).
# Progress goes to stderr. `scripts/services/knot.sh stop` stops the server.
# Environment: TENANTOPS_KNOT_PORT (default 15354), TENANTOPS_KNOT_DIR (default .services/knot).
set -euo pipefail
cd "$(dirname "$0")/../.."

# shellcheck source=scripts/services/lib.sh
. scripts/services/lib.sh

PORT=${TENANTOPS_KNOT_PORT:-15354}
DIR=${TENANTOPS_KNOT_DIR:-$PWD/.services/knot}
ZONE=example.test
LOCKED_ZONE=locked.test
KEY_NAME=tenantops-test
PIDFILE=$DIR/run/knot.pid

if [ "${1:-}" = "stop" ]; then
  stop_service knot "$PIDFILE"
  exit 0
fi

if ! command -v knotd >/dev/null || ! command -v kdig >/dev/null; then
  apt_install knot knot knot-dnsutils
fi

mkdir -p "$DIR/run" "$DIR/db" "$DIR/zones"
chmod 700 "$DIR"
umask 077

if [ ! -f "$DIR/tsig.conf" ]; then
  say "knot: generating TSIG key $KEY_NAME (hmac-sha256)"
  keymgr -t "$KEY_NAME" hmac-sha256 >"$DIR/tsig.conf"
fi
# The bare secret, for the tests' provider config; never printed.
sed -n 's/^ *secret: *//p' "$DIR/tsig.conf" >"$DIR/tsig.secret"

write_zone() {  # zone file with SOA, NS and glue, only when absent: Knot rewrites it
  local zone=$1
  [ -f "$DIR/zones/$zone.zone" ] && return 0
  cat >"$DIR/zones/$zone.zone" <<EOF
\$TTL 300
@       IN SOA ns1.$zone. hostmaster.$zone. ( 1 3600 600 86400 60 )
@       IN NS  ns1.$zone.
ns1     IN A   127.0.0.1
EOF
}
write_zone "$ZONE"
write_zone "$LOCKED_ZONE"

cat >"$DIR/knot.conf" <<EOF
server:
    rundir: "$DIR/run"
    pidfile: "$PIDFILE"
    listen: 127.0.0.1@$PORT

log:
  - target: "$DIR/knot.log"
    any: info

include: "$DIR/tsig.conf"

acl:
  - id: tenantops-update
    key: $KEY_NAME
    action: update

database:
    storage: "$DIR/db"

template:
  - id: default
    storage: "$DIR/zones"
    file: "%s.zone"
    # The zone file always holds the current zone (flushed after each update) and the journal
    # only the changes, so a restart loads the latest serial; journal-content: all with
    # zonefile-sync: -1 reloads serial 1 from the file and then fails every update.
    zonefile-sync: 0
    journal-content: changes

zone:
  - domain: $ZONE
    acl: tenantops-update
  - domain: $LOCKED_ZONE
EOF

answers() {
  [ -n "$(kdig +short +time=1 +retry=0 -p "$PORT" @127.0.0.1 "$ZONE" SOA 2>/dev/null)" ]
}

if running "$PIDFILE" && answers; then
  say "knot: already running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
else
  if running "$PIDFILE"; then kill "$(cat "$PIDFILE")"; sleep 0.5; fi
  knotc -c "$DIR/knot.conf" conf-check >&2
  say "knot: starting knotd on 127.0.0.1:$PORT"
  knotd -c "$DIR/knot.conf" -d </dev/null >&2
fi

for _ in $(seq 1 100); do
  if answers; then
    print_dns_env KNOT "$PORT" "$ZONE" "$KEY_NAME" "$DIR/tsig.secret"
    exit 0
  fi
  sleep 0.1
done
say "knot: knotd did not answer on 127.0.0.1:$PORT; see $DIR/knot.log"
exit 1
