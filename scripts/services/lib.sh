# Shared by the service scripts (sourced, not run): messages, pid files, apt installs, and the
# environment lines a DNS test server prints. Messages go to stderr; stdout carries only the
# KEY=VALUE lines scripts/test exports.

say() { printf '%s\n' "$*" >&2; }

# running PIDFILE: the process in PIDFILE is alive.
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_service NAME PIDFILE: end the process and wait (10 s at most) until it has exited, so
# its port is free again.
stop_service() {
  local name=$1 pidfile=$2 pid
  if running "$pidfile"; then
    kill "$(cat "$pidfile")"
    for _ in $(seq 1 100); do
      pid=$(cat "$pidfile" 2>/dev/null || true)
      if [ -z "$pid" ] || ! grep -qs '^State:.*[RSD]' "/proc/$pid/status"; then
        break
      fi
      sleep 0.1
    done
    say "$name: stopped"
  fi
}

# apt_install NAME PACKAGE...: install Debian packages, or explain why it cannot (not root).
apt_install() {
  local name=$1
  shift
  if [ "$(id -u)" -ne 0 ]; then
    say "$name: $* not installed and installing needs root;"
    say "  run 'apt-get install $*' as root"
    exit 1
  fi
  say "$name: installing $* with apt-get"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# print_dns_env PREFIX PORT ZONE KEY_NAME SECRET_FILE: the variables the DNS tests read.
print_dns_env() {
  printf 'TENANTOPS_TEST_%s_PORT=%s\n' "$1" "$2"
  printf 'TENANTOPS_TEST_%s_ZONE=%s\n' "$1" "$3"
  printf 'TENANTOPS_TEST_%s_TSIG_KEY_NAME=%s\n' "$1" "$4"
  printf 'TENANTOPS_TEST_%s_TSIG_SECRET_FILE=%s\n' "$1" "$5"
}
