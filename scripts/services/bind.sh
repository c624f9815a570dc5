#!/usr/bin/env bash
# Start a throwaway BIND 9.18 primary for the DNS provider tests and print where it is.
#
# Idempotent: installs bind9 with apt-get when it is missing (root only), generates a TSIG key
# (hmac-sha256) and writes the config under .services/bind/ (gitignored) on first use, starts
# `named` on 127.0.0.1:PORT unless it is already running, waits until it answers, and prints
# lines for the caller to export:
#
#   TENANTOPS_TEST_BIND_PORT=15353
#   TENANTOPS_TEST_BIND_ZONE=example.test
#   TENANTOPS_TEST_BIND_TSIG_KEY_NAME=tenantops-test
#   TENANTOPS_TEST_BIND_TSIG_SECRET_FILE=/abs/path/.services/bind/tsig.secret
#
# The TSIG secret itself is never printed: it stays in a file readable only by its owner.
# Zones: example.test (dynamic updates allowed with the key) and locked.test (no updates at
# all, so the tests can see REFUSED).
# Progress goes to stderr. `scripts/services/bind.sh stop` stops the server.
# Environment: TENANTOPS_BIND_PORT (default 15353), TENANTOPS_BIND_DIR (default .services/bind).
set -euo pipefail
cd "$(dirname "$0")/../.."

# shellcheck source=scripts/services/lib.sh
. scripts/services/lib.sh

PORT=${TENANTOPS_BIND_PORT:-15353}
DIR=${TENANTOPS_BIND_DIR:-$PWD/.services/bind}
ZONE=example.test
LOCKED_ZONE=locked.test
KEY_NAME=tenantops-test
PIDFILE=$DIR/named.pid

if [ "${1:-}" = "stop" ]; then
  stop_service bind "$PIDFILE"
  exit 0
fi

if ! command -v named >/dev/null || ! command -v dig >/dev/null; then
  apt_install bind bind9 bind9-utils bind9-dnsutils
fi

mkdir -p "$DIR"
chmod 700 "$DIR"
umask 077

if [ ! -f "$DIR/tsig.key" ]; then
  say "bind: generating TSIG key $KEY_NAME (hmac-sha256)"
  tsig-keygen -a hmac-sha256 "$KEY_NAME" >"$DIR/tsig.key"
fi
# The bare secret, for the tests' provider config; never printed.
sed -n 's/.*secret "\(.*\)";.*/\1/p' "$DIR/tsig.key" >"$DIR/tsig.secret"

write_zone() {  # zone file with SOA, NS and glue, only when absent: updates live in it and its .jnl
  local zone=$1
  [ -f "$DIR/db.$zone" ] && return 0
  cat >"$DIR/db.$zone" <<EOF
\$TTL 300
@       IN SOA ns1.$zone. hostmaster.$zone. ( 1 3600 600 86400 60 )
@       IN NS  ns1.$zone.
ns1     IN A   127.0.0.1
EOF
}
write_zone "$ZONE"
write_zone "$LOCKED_ZONE"

cat >"$DIR/named.conf" <<EOF
include "$DIR/tsig.key";
options {
  directory "$DIR";
  pid-file "$PIDFILE";
  listen-on port $PORT { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion no;
  dnssec-validation no;
  notify no;
};
controls { };
logging {
  channel file_log { file "$DIR/named.log" versions 2 size 5m; severity info; print-time yes; };
  category default { file_log; };
  category update { file_log; };
  category update-security { file_log; };
};
zone "$ZONE" {
  type primary;
  file "$DIR/db.$ZONE";
  allow-update { key "$KEY_NAME"; };
};
zone "$LOCKED_ZONE" {
  type primary;
  file "$DIR/db.$LOCKED_ZONE";
  allow-update { none; };
};
EOF

answers() { [ -n "$(dig +short +time=1 +tries=1 -p "$PORT" @127.0.0.1 "$ZONE" SOA 2>/dev/null)" ]; }

if running "$PIDFILE" && answers; then
  say "bind: already running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
else
  if running "$PIDFILE"; then kill "$(cat "$PIDFILE")"; sleep 0.5; fi
  named-checkconf "$DIR/named.conf" >&2
  user_args=()
  if [ "$(id -u)" -eq 0 ]; then user_args=(-u root); fi
  say "bind: starting named on 127.0.0.1:$PORT"
  # named daemonises and writes the pid file itself.
  named -c "$DIR/named.conf" "${user_args[@]}" </dev/null >&2
fi

for _ in $(seq 1 100); do
  if answers; then
    print_dns_env BIND "$PORT" "$ZONE" "$KEY_NAME" "$DIR/tsig.secret"
    exit 0
  fi
  sleep 0.1
done
say "bind: named did not answer on 127.0.0.1:$PORT; see $DIR/named.log"
exit 1
