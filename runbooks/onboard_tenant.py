#!/usr/bin/env python3
"""Onboard a tenant through the tenantops API from an Azure Automation runbook.

Standard library only (Azure Automation's Python runtime installs nothing for you); Python 3.10+.

The token comes from the managed-identity endpoint of the runtime with ``resource`` set to the
API's client ID, which is the whole point: a token for Azure Resource Manager is refused with
"You do not have permission to view this directory or page."

    IDENTITY_ENDPOINT + IDENTITY_HEADER   Automation cloud jobs, App Service, Functions (2019-08-01)
    MSI_ENDPOINT + MSI_SECRET             older hybrid workers and App Service (2017-09-01)
    IMDS (169.254.169.254)                hybrid workers on Azure VMs

Parameters, as Automation passes them on the command line:
    --api-url https://func-tenantops.azurewebsites.net (with or without /api)
    --client-id <API client ID>
    --slug acme --domain acme.example.com --admin-email admin@acme.example.com [--plan standard]
    [--identity-client-id <user-assigned identity>] [--timeout 1800]

Exit codes: 0 the run succeeded; 1 the run failed or was cancelled; 2 bad parameters;
3 no token could be obtained; 4 the API refused the call (401/403/4xx); 5 timed out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

IMDS_URL = "http://169.254.169.254/metadata/identity/oauth2/token"
USER_AGENT = "tenantops-runbook/1"

# Microsoft's own services by the names a token request may use (resource URI, lower case,
# without a trailing slash; application ID). tenantops.first_party holds the full list; a test
# checks that every entry here agrees with it. The runbook cannot import tenantops.
MICROSOFT_SERVICES = {
    "https://management.azure.com": "Azure Resource Manager",
    "https://management.core.windows.net": "Azure Resource Manager",
    "https://management.usgovcloudapi.net": "Azure Resource Manager",
    "https://management.chinacloudapi.cn": "Azure Resource Manager",
    "797f4846-ba00-4fd7-ba43-dac1f8f63013": "Azure Resource Manager",
    "https://graph.microsoft.com": "Microsoft Graph",
    "00000003-0000-0000-c000-000000000000": "Microsoft Graph",
    "https://graph.windows.net": "Azure AD Graph",
    "https://vault.azure.net": "Azure Key Vault",
    "cfa8b339-82a2-471a-a3c9-0fc0be7a4093": "Azure Key Vault",
    "https://storage.azure.com": "Azure Storage",
    "https://database.windows.net": "Azure SQL Database",
    "api://azureadtokenexchange": "Entra workload identity federation (token exchange)",
}


class RunbookError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """urllib follows redirects with every header, Authorization included, to any host; this
    runbook follows none (a 3xx comes back as the answer, and `_api` refuses it)."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _http(method: str, url: str, headers: dict[str, str], body: bytes | None = None,
          timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    if not url.lower().startswith(("http://", "https://")):
        raise RunbookError(f"{url!r} is not an http(s) URL", 2)
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url, data=body, method=method, headers={"User-Agent": USER_AGENT, **headers})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _describe_failure(status: int, headers: dict[str, str], body: bytes) -> str:
    text = body.decode("utf-8", "replace")[:500]
    diagnostic = {k.lower(): v for k, v in headers.items()}.get("x-tenantops-diagnostic")
    hint = ""
    if status == 500 and "unexpected error" in text:
        hint = (" App Service hides Entra's reason here: usually AADSTS500011 (the resource is "
                "not the API's client ID or App ID URI) or AADSTS501051 (this identity has no "
                "app role on the API while assignment is required).")
    extra = f" Real cause: {diagnostic}" if diagnostic else ""
    return f"HTTP {status}: {text}{hint}{extra}"


def get_token(resource: str, identity_client_id: str | None) -> str:
    """A token for ``resource`` from the first managed-identity endpoint this runtime has."""
    env = os.environ
    if env.get("IDENTITY_ENDPOINT") and env.get("IDENTITY_HEADER"):
        query = {"resource": resource, "api-version": "2019-08-01"}
        if identity_client_id:
            query["client_id"] = identity_client_id
        url = f"{env['IDENTITY_ENDPOINT']}?{urllib.parse.urlencode(query)}"
        headers = {"X-IDENTITY-HEADER": env["IDENTITY_HEADER"], "Metadata": "True"}
        source = "IDENTITY_ENDPOINT"
    elif env.get("MSI_ENDPOINT") and env.get("MSI_SECRET"):
        query = {"resource": resource, "api-version": "2017-09-01"}
        if identity_client_id:
            query["clientid"] = identity_client_id
        url = f"{env['MSI_ENDPOINT']}?{urllib.parse.urlencode(query)}"
        headers = {"secret": env["MSI_SECRET"], "Metadata": "true"}
        source = "MSI_ENDPOINT"
    else:
        query = {"resource": resource, "api-version": "2018-02-01"}
        if identity_client_id:
            query["client_id"] = identity_client_id
        base = env.get("AZURE_POD_IDENTITY_AUTHORITY_HOST", "").rstrip("/")
        url = (f"{base}/metadata/identity/oauth2/token" if base else IMDS_URL)
        url = f"{url}?{urllib.parse.urlencode(query)}"
        headers = {"Metadata": "true"}
        source = "IMDS"
    try:
        status, response_headers, body = _http("GET", url, headers, timeout=10)
    except OSError as error:
        raise RunbookError(
            f"no managed-identity endpoint answered ({source}: {error}). Enable a managed "
            "identity on the Automation account (Identity blade) and run the job in Azure.", 3
        ) from error
    if status != 200:
        raise RunbookError(
            f"the {source} managed-identity endpoint refused resource={resource}: "
            f"{_describe_failure(status, response_headers, body)}", 3)
    token = json.loads(body).get("access_token")
    if not token:
        raise RunbookError(f"the {source} endpoint answered without an access_token", 3)
    print(f"token: obtained from {source} for resource {resource}")
    return str(token)


def _api(method: str, url: str, token: str, payload: dict[str, Any] | None = None,
         idempotency_key: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    body = None
    if payload is not None:
        body = json.dumps(payload).encode()
        headers["Content-Type"] = "application/json"
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    try:
        status, response_headers, response = _http(method, url, headers, body)
    except OSError as error:
        raise RunbookError(f"cannot reach the API at {url}: {error}; check --api-url", 4) from error
    if 300 <= status < 400:
        location = {k.lower(): v for k, v in response_headers.items()}.get("location", "?")
        raise RunbookError(
            f"{method} {url} answered HTTP {status}, redirecting to {location}; the runbook does "
            "not follow redirects with its token. Check --api-url", 4)
    if status >= 400:
        lowered = {k.lower(): v for k, v in response_headers.items()}
        challenge = lowered.get("www-authenticate", "")
        try:
            detail = json.loads(response)
        except ValueError:
            detail = {"error_description": response.decode("utf-8", "replace")[:500]}
        explanation = detail.get("error_description") or detail.get("detail") or detail
        raise RunbookError(
            f"{method} {url} was refused with HTTP {status}: {explanation}"
            + (f" (WWW-Authenticate: {challenge})" if challenge else ""), 4)
    return dict(json.loads(response)) if response else {}


def _steps_line(run: dict[str, Any]) -> str:
    marks = {"succeeded": "ok", "running": "..", "failed": "!!", "pending": "  "}
    return ", ".join(f"{s['name']}[{marks.get(s['status'], s['status'])}]"
                     for s in run.get("steps", []))


def api_root(url: str) -> str:
    """The API root, /api included, whether the URL has it or not (as the CLI's --api-url)."""
    parts = urllib.parse.urlsplit(url.strip())
    segments = [s for s in parts.path.split("/") if s]
    segments = segments[: segments.index("api") + 1] if "api" in segments else [*segments, "api"]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/" + "/".join(segments), "", ""))


def microsoft_service(value: str) -> str | None:
    """The Microsoft service a --client-id value names, if it names one."""
    key = value.strip().lower()
    key = key[: -len("/.default")] if key.endswith("/.default") else key
    key = key.rstrip("/")
    return MICROSOFT_SERVICES.get(key) or MICROSOFT_SERVICES.get(key.removeprefix("api://"))


def onboard(args: argparse.Namespace) -> int:
    token = get_token(args.client_id, args.identity_client_id)
    base = api_root(args.api_url)
    spec = {"slug": args.slug, "display_name": args.display_name or args.slug,
            "custom_domain": args.domain, "admin_email": args.admin_email, "plan": args.plan}
    created = _api("POST", f"{base}/tenants", token, spec,
                   idempotency_key=f"runbook-{args.slug}-{args.domain}")
    run = created["run"]
    print(f"run {run['id']} ({run['kind']}) for tenant {args.slug}: {run['status']}")
    deadline = time.monotonic() + args.timeout
    last = ""
    while run["status"] in {"pending", "running"}:
        if time.monotonic() > deadline:
            raise RunbookError(f"run {run['id']} still {run['status']} after {args.timeout} s; "
                               f"follow it with GET {base}/runs/{run['id']}", 5)
        time.sleep(args.poll_interval)
        run = _api("GET", f"{base}/runs/{run['id']}", token)
        line = f"{run['status']}: {_steps_line(run)}"
        if line != last:
            print(f"{dt.datetime.now(dt.timezone.utc):%H:%M:%S} {line}")
            last = line
    if run["status"] != "succeeded":
        failed = [s for s in run.get("steps", []) if s.get("status") == "failed"]
        reason = f"step {failed[0]['name']}: {failed[0].get('error')}" if failed else run["status"]
        raise RunbookError(f"run {run['id']} {run['status']}: {reason}. Fix the cause, then "
                           f"POST {base}/runs/{run['id']}/retry", 1)
    print(f"tenant {args.slug} is active (run {run['id']})")
    return 0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Onboard a tenant through the tenantops API.")
    parser.add_argument("--api-url", required=True,
                        help="the API's base URL, with or without /api")
    parser.add_argument("--client-id", required=True, help="the API app registration's client ID")
    parser.add_argument("--slug", required=True)
    parser.add_argument("--domain", required=True)
    parser.add_argument("--admin-email", required=True)
    parser.add_argument("--plan", default="standard")
    parser.add_argument("--display-name")
    parser.add_argument("--identity-client-id", help="a user-assigned identity's client ID")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    args = parser.parse_args(argv)
    service = microsoft_service(args.client_id)
    if service is not None:
        parser.error(f"--client-id {args.client_id!r} is {service}, not the tenantops API: a "
                     f"token for {service} is exactly what the API refuses (\"You do not have "
                     "permission to view this directory or page.\"). Give the API app "
                     "registration's client ID (a GUID) or api://<client ID>")
    target = urllib.parse.urlsplit(args.api_url.strip())
    if not target.netloc or target.scheme not in ("http", "https"):
        parser.error(f"--api-url {args.api_url!r} is not an http(s) URL; give the API's base "
                     "URL, e.g. https://func-tenantops.azurewebsites.net (with or without /api)")
    if target.scheme == "http" and not _is_loopback(target.hostname or ""):
        parser.error(f"--api-url {args.api_url!r} is plain http to another machine: the token "
                     "would travel readable. Use https (plain http only to localhost)")
    name = args.client_id.removeprefix("api://").rstrip("/")
    if "/" in name or name.endswith(".default"):
        parser.error(f"--client-id {args.client_id!r}: give the API's client ID (a GUID) or its "
                     "App ID URI, not a scope; Entra answers a scope with AADSTS500011")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        return onboard(args)
    except RunbookError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
