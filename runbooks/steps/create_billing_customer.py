#!/usr/bin/env python3
"""A tenantops command step: the tenant's customer in a billing system, made at onboarding,
kept in step with the tenant on changes, removed at offboarding.

Standard library only, like the other runbooks: it is the same script a team would run from
Azure Automation, turned into a step by reading its parameters from the environment tenantops
gives a command step (docs/custom-steps.md) instead of the command line. Declare it with:

    [[steps]]
    name = "create_billing_customer"
    type = "command"
    command = ["python3", "runbooks/steps/create_billing_customer.py"]
    after = "create_database"
    runs_in = ["onboard", "offboard", "update"]
    observe = true
    env = { BILLING_API_URL = "https://billing.internal.example/api" }
    secrets = { BILLING_API_KEY = "billing-api-key" }   # a secret in the secrets provider

What it reads:
    TENANTOPS_ACTION            ensure | remove | observe
    TENANTOPS_TENANT_SLUG, TENANTOPS_TENANT_DISPLAY_NAME, TENANTOPS_TENANT_PLAN,
    TENANTOPS_TENANT_ADMIN_EMAIL
    BILLING_API_URL, BILLING_API_KEY

The billing API it calls (a customer per tenant, found by its external ID, the slug):
    GET    {url}/customers/{slug}       200 {"id", "name", "plan", "email"} | 404
    PUT    {url}/customers/{slug}       create or update; 200 {"id", ...}
    DELETE {url}/customers/{slug}       204 | 404

What it answers: one JSON line on standard output (ensure: {"customer_id": ...}; observe: the
customer, or null), anything else on standard error. Exit codes: 0 done; 75 a fault worth
retrying (429, 5xx, timeout, connection refused: tenantops retries with backoff); 2 bad
configuration; 1 the billing API refused the request (tenantops stops the run until it is
retried).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

EX_TEMPFAIL = 75  # sysexits.h: try again later
TIMEOUT_SECONDS = 20


class Retry(Exception):
    """A fault worth retrying."""


def _request(method: str, url: str, key: str, body: dict[str, Any] | None = None
             ) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={  # noqa: S310
        "Authorization": f"Bearer {key}", "Content-Type": "application/json",
        "User-Agent": "tenantops-step/1"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            text = response.read().decode()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        if error.code == 429 or error.code >= 500:
            raise Retry(f"{method} {url} answered {error.code}") from None
        text = error.read().decode(errors="replace")[:300]
        return error.code, text
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise Retry(f"{method} {url} failed: {error}") from None


def main() -> int:
    action = os.environ.get("TENANTOPS_ACTION", "")
    slug = os.environ.get("TENANTOPS_TENANT_SLUG", "")
    base = os.environ.get("BILLING_API_URL", "").rstrip("/")
    key = os.environ.get("BILLING_API_KEY", "")
    if action not in ("ensure", "remove", "observe") or not slug or not base or not key:
        print("error: TENANTOPS_ACTION, TENANTOPS_TENANT_SLUG, BILLING_API_URL and "
              "BILLING_API_KEY must be set (declare BILLING_API_URL in env and "
              "BILLING_API_KEY in secrets)", file=sys.stderr)
        return 2
    parts = urllib.parse.urlsplit(base)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        print(f"error: BILLING_API_URL = {base!r} must be https (http only to this machine): "
              "the API key would travel in clear", file=sys.stderr)
        return 2
    url = f"{base}/customers/{urllib.parse.quote(slug, safe='')}"
    try:
        if action == "observe":
            status, found = _request("GET", url, key)
            print(json.dumps(found if status == 200 else None))
            return 0
        if action == "remove":
            status, answer = _request("DELETE", url, key)
            if status not in (200, 204, 404):
                print(f"error: the billing API refused to delete {slug}: {status} {answer}",
                      file=sys.stderr)
                return 1
            print(f"customer {slug}: {'deleted' if status != 404 else 'already gone'}",
                  file=sys.stderr)
            print("{}")
            return 0
        wanted = {"name": os.environ.get("TENANTOPS_TENANT_DISPLAY_NAME", slug),
                  "plan": os.environ.get("TENANTOPS_TENANT_PLAN", ""),
                  "email": os.environ.get("TENANTOPS_TENANT_ADMIN_EMAIL", "")}
        status, answer = _request("PUT", url, key, wanted)
        if status != 200 or not isinstance(answer, dict):
            print(f"error: the billing API refused customer {slug}: {status} {answer}",
                  file=sys.stderr)
            return 1
        print(f"customer {slug} is {answer.get('id')} on plan {answer.get('plan')}",
              file=sys.stderr)
        print(json.dumps({"customer_id": answer.get("id")}))
        return 0
    except Retry as retry:
        print(f"will retry: {retry}", file=sys.stderr)
        return EX_TEMPFAIL


if __name__ == "__main__":
    sys.exit(main())
