#!/usr/bin/env bash
# Start a throwaway Keycloak 26 for the organization provider tests and print where it is.
#
# Idempotent:
#   1. fetches org.keycloak:keycloak-quarkus-dist:VERSION:zip with Maven once into a cache
#      (~/.cache/tenantops/keycloak) and unpacks it under .services/keycloak/ (gitignored);
#   2. picks a Java the version supports (25 from Keycloak 26.6, else 21);
#   3. starts `kc.sh start-dev` on 127.0.0.1 with health enabled, unless it is already running,
#      with a bootstrap admin whose generated password stays in .services/keycloak/;
#   4. waits for /health/ready on the management port and reports how long the start took;
#   5. converges the test realm: organizations enabled, SMTP pointed at 127.0.0.1:SMTP_PORT,
#      and a confidential client whose service account holds the realm-management roles
#      tenantops needs. tenantops authenticates as that client (client credentials), never
#      with the admin password.
# It prints lines for the caller to export:
#
#   TENANTOPS_TEST_KEYCLOAK_URL=http://127.0.0.1:18080
#   TENANTOPS_TEST_KEYCLOAK_REALM=tenantops-test
#   TENANTOPS_TEST_KEYCLOAK_CLIENT_ID=tenantops-provisioner
#   TENANTOPS_TEST_KEYCLOAK_CLIENT_SECRET_FILE=/abs/path/.services/keycloak/client-secret
#   TENANTOPS_TEST_SMTP_PORT=2525
#
# Secrets (admin password, client secret) are never printed: they stay in files readable only
# by their owner. Progress goes to stderr. `scripts/services/keycloak.sh stop` stops the server.
# Environment: TENANTOPS_KEYCLOAK_VERSION (default 26.7.3), TENANTOPS_KEYCLOAK_PORT (18080),
# TENANTOPS_KEYCLOAK_MANAGEMENT_PORT (19000), TENANTOPS_TEST_SMTP_PORT (2525),
# TENANTOPS_KEYCLOAK_DIR (.services/keycloak), TENANTOPS_KEYCLOAK_CACHE,
# TENANTOPS_KEYCLOAK_JAVA_HOME (a JDK to use instead of the one found).
set -euo pipefail
cd "$(dirname "$0")/../.."

# shellcheck source=scripts/services/lib.sh
. scripts/services/lib.sh

VERSION=${TENANTOPS_KEYCLOAK_VERSION:-26.7.3}
PORT=${TENANTOPS_KEYCLOAK_PORT:-18080}
MGMT_PORT=${TENANTOPS_KEYCLOAK_MANAGEMENT_PORT:-19000}
SMTP_PORT=${TENANTOPS_TEST_SMTP_PORT:-2525}
DIR=${TENANTOPS_KEYCLOAK_DIR:-$PWD/.services/keycloak}
CACHE=${TENANTOPS_KEYCLOAK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tenantops/keycloak}
REALM=tenantops-test
CLIENT_ID=tenantops-provisioner
ADMIN_USER=tenantops-admin
PIDFILE=$DIR/keycloak.pid
KC_HOME=$DIR/keycloak-$VERSION
URL="http://127.0.0.1:$PORT"

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }
ready() { curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$MGMT_PORT/health/ready"; }

if [ "${1:-}" = "stop" ]; then
  if running; then
    # kc.sh runs in its own session (setsid); end the whole group.
    kill -- -"$(cat "$PIDFILE")" 2>/dev/null || kill "$(cat "$PIDFILE")"
    for _ in $(seq 1 60); do  # until the HTTP port is closed
      curl -s -o /dev/null --max-time 1 "$URL/" || break
      sleep 0.5
    done
    say "keycloak: stopped"
  fi
  exit 0
fi

need_root_install() {  # package, what for
  if [ "$(id -u)" -ne 0 ]; then
    say "keycloak: $2 needs '$1', which is missing; install it (apt-get install $1) as root"
    exit 1
  fi
  say "keycloak: installing $1 with apt-get"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" >&2
}
command -v curl >/dev/null || need_root_install curl "waiting for readiness"
command -v unzip >/dev/null || need_root_install unzip "unpacking the distribution"
command -v python3 >/dev/null || need_root_install python3 "configuring the realm"

java_major() {  # JAVA_HOME -> major version, or nothing
  "$1/bin/java" -XshowSettings:properties -version 2>&1 \
    | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p'
}
minor=$(printf '%s' "$VERSION" | cut -d. -f2)
if [ "$minor" -ge 6 ]; then wanted="25 21"; else wanted="21"; fi
JAVA_HOME_FOUND=${TENANTOPS_KEYCLOAK_JAVA_HOME:-}
if [ -z "$JAVA_HOME_FOUND" ]; then
  for major in $wanted; do
    for candidate in /usr/lib/jvm/*; do
      if [ -x "$candidate/bin/java" ] && [ "$(java_major "$candidate")" = "$major" ]; then
        JAVA_HOME_FOUND=$candidate
        break 2
      fi
    done
  done
fi
if [ -z "$JAVA_HOME_FOUND" ]; then
  say "keycloak: no supported Java for Keycloak $VERSION (wanted: $wanted) under /usr/lib/jvm;"
  say "  install a JDK 21 (or 25 for Keycloak >= 26.6) and set TENANTOPS_KEYCLOAK_JAVA_HOME"
  exit 1
fi

ZIP=$CACHE/keycloak-quarkus-dist-$VERSION.zip
if [ ! -f "$ZIP" ]; then
  command -v mvn >/dev/null || need_root_install maven "fetching the Keycloak distribution"
  say "keycloak: fetching org.keycloak:keycloak-quarkus-dist:$VERSION:zip with Maven into $CACHE"
  mkdir -p "$CACHE"
  # dependency:copy needs no project; Maven runs on the system's default Java.
  mvn -q -B dependency:copy \
    -Dartifact="org.keycloak:keycloak-quarkus-dist:$VERSION:zip" \
    -DoutputDirectory="$CACHE" >&2
fi

mkdir -p "$DIR"
chmod 700 "$DIR"
if [ ! -x "$KC_HOME/bin/kc.sh" ]; then
  say "keycloak: unpacking $VERSION into $DIR"
  rm -rf "$KC_HOME.partial"
  mkdir -p "$KC_HOME.partial"
  unzip -q "$ZIP" -d "$KC_HOME.partial"
  mv "$KC_HOME.partial/keycloak-$VERSION" "$KC_HOME"
  rm -rf "$KC_HOME.partial"
fi

umask 077
# The bootstrap admin exists only once the master realm is created, so its password must live
# as long as the data directory: a data directory without it is started afresh.
if [ ! -s "$DIR/admin-password" ]; then
  if running; then kill -- -"$(cat "$PIDFILE")" 2>/dev/null || true; sleep 2; fi
  rm -rf "$KC_HOME/data"
  python3 -c 'import secrets; print(secrets.token_urlsafe(24))' >"$DIR/admin-password"
fi
if [ ! -s "$DIR/client-secret" ]; then
  python3 -c 'import secrets; print(secrets.token_urlsafe(32))' >"$DIR/client-secret"
fi

if running && ready; then
  say "keycloak: already running on $URL (pid $(cat "$PIDFILE"))"
else
  if running; then kill -- -"$(cat "$PIDFILE")" 2>/dev/null || true; sleep 2; fi
  say "keycloak: starting $VERSION on $URL (Java $(java_major "$JAVA_HOME_FOUND") from $JAVA_HOME_FOUND)"
  started=$(date +%s.%N)
  # setsid: kc.sh and the JVM it starts form their own process group, so `stop` ends both.
  JAVA_HOME=$JAVA_HOME_FOUND \
  KC_BOOTSTRAP_ADMIN_USERNAME=$ADMIN_USER \
  KC_BOOTSTRAP_ADMIN_PASSWORD=$(cat "$DIR/admin-password") \
    setsid "$KC_HOME/bin/kc.sh" start-dev \
      --http-host=127.0.0.1 --http-port="$PORT" \
      --http-management-host=127.0.0.1 --http-management-port="$MGMT_PORT" \
      --health-enabled=true \
      </dev/null >"$DIR/keycloak.log" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 600); do
    if ready; then break; fi
    if ! running; then
      say "keycloak: the server exited while starting; the end of $DIR/keycloak.log:"
      tail -n 30 "$DIR/keycloak.log" >&2
      exit 1
    fi
    sleep 0.5
  done
  if ! ready; then
    say "keycloak: not ready after 300 s; see $DIR/keycloak.log"
    exit 1
  fi
  elapsed=$(python3 -c "import time; print(f'{time.time() - $started:.1f}')")
  echo "$elapsed" >"$DIR/start-seconds"
  say "keycloak: ready in $elapsed s"
fi

# Converge the test realm and the service-account client through the admin REST API.
KC_URL=$URL KC_REALM=$REALM KC_CLIENT_ID=$CLIENT_ID KC_ADMIN_USER=$ADMIN_USER \
KC_SMTP_PORT=$SMTP_PORT KC_DIR=$DIR python3 - <<'PY' >&2
import json, os, urllib.error, urllib.parse, urllib.request

url, realm, client_id = os.environ["KC_URL"], os.environ["KC_REALM"], os.environ["KC_CLIENT_ID"]
directory = os.environ["KC_DIR"]
with open(f"{directory}/admin-password") as f:
    password = f.read().strip()
with open(f"{directory}/client-secret") as f:
    client_secret = f.read().strip()

def call(method, path, body=None, form=None, token=None):
    headers = {}
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")

status, answer = call("POST", "/realms/master/protocol/openid-connect/token", form={
    "grant_type": "password", "client_id": "admin-cli",
    "username": os.environ["KC_ADMIN_USER"], "password": password,
})
if status != 200:
    raise SystemExit(f"keycloak: the bootstrap admin could not sign in ({status}); "
                     "delete .services/keycloak/admin-password to start afresh")
token = answer["access_token"]

realm_settings = {
    "realm": realm, "enabled": True, "organizationsEnabled": True,
    "smtpServer": {"host": "127.0.0.1", "port": os.environ["KC_SMTP_PORT"],
                   "from": "noreply@tenantops.test", "fromDisplayName": "tenantops tests"},
}
status, _ = call("GET", f"/admin/realms/{realm}", token=token)
if status == 404:
    status, answer = call("POST", "/admin/realms", body=realm_settings, token=token)
    if status != 201:
        raise SystemExit(f"keycloak: creating realm {realm} failed ({status}): {answer}")
    print(f"keycloak: created realm {realm}")
else:
    status, answer = call("PUT", f"/admin/realms/{realm}", body=realm_settings, token=token)
    if status != 204:
        raise SystemExit(f"keycloak: updating realm {realm} failed ({status}): {answer}")

client = {
    "clientId": client_id, "enabled": True, "protocol": "openid-connect",
    "publicClient": False, "clientAuthenticatorType": "client-secret", "secret": client_secret,
    "serviceAccountsEnabled": True, "standardFlowEnabled": False,
    "implicitFlowEnabled": False, "directAccessGrantsEnabled": False,
    "description": "tenantops provisioning (organization provider)",
}
status, found = call("GET", f"/admin/realms/{realm}/clients?clientId={client_id}", token=token)
if found:
    internal_id = found[0]["id"]
    status, answer = call("PUT", f"/admin/realms/{realm}/clients/{internal_id}",
                          body=client, token=token)
    if status != 204:
        raise SystemExit(f"keycloak: updating client {client_id} failed ({status}): {answer}")
else:
    status, answer = call("POST", f"/admin/realms/{realm}/clients", body=client, token=token)
    if status != 201:
        raise SystemExit(f"keycloak: creating client {client_id} failed ({status}): {answer}")
    status, found = call("GET", f"/admin/realms/{realm}/clients?clientId={client_id}",
                         token=token)
    internal_id = found[0]["id"]
    print(f"keycloak: created client {client_id}")

# Organizations need manage-realm (writes) and view-realm; invitations and members need the
# user roles.
wanted = ["manage-realm", "view-realm", "manage-users", "view-users", "query-users"]
status, user = call("GET", f"/admin/realms/{realm}/clients/{internal_id}/service-account-user",
                    token=token)
status, management = call("GET", f"/admin/realms/{realm}/clients?clientId=realm-management",
                          token=token)
management_id = management[0]["id"]
roles = []
for name in wanted:
    status, role = call("GET", f"/admin/realms/{realm}/clients/{management_id}/roles/{name}",
                        token=token)
    roles.append(role)
status, answer = call(
    "POST", f"/admin/realms/{realm}/users/{user['id']}/role-mappings/clients/{management_id}",
    body=roles, token=token)
if status != 204:
    raise SystemExit(f"keycloak: granting roles failed ({status}): {answer}")

status, _ = call("POST", f"/realms/{realm}/protocol/openid-connect/token", form={
    "grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret,
})
if status != 200:
    raise SystemExit(f"keycloak: the service account could not sign in ({status})")
print(f"keycloak: realm {realm} ready; client {client_id} has {', '.join(wanted)}")
PY

printf 'TENANTOPS_TEST_KEYCLOAK_URL=%s\n' "$URL"
printf 'TENANTOPS_TEST_KEYCLOAK_REALM=%s\n' "$REALM"
printf 'TENANTOPS_TEST_KEYCLOAK_CLIENT_ID=%s\n' "$CLIENT_ID"
printf 'TENANTOPS_TEST_KEYCLOAK_CLIENT_SECRET_FILE=%s\n' "$DIR/client-secret"
printf 'TENANTOPS_TEST_SMTP_PORT=%s\n' "$SMTP_PORT"
