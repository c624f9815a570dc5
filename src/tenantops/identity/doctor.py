"""``tenantops auth doctor URL``: why a call to a protected API fails, step by step, and the fix.

The steps are the path a runbook takes, each ending with what to do next:

1. probe: call the URL without a token and read the 401's ``WWW-Authenticate``; when it names
   no audience, read the tenantops API's public metadata route (``<api root>/meta``);
2. audience: the one the API advertises, within the pinning rules of `discover_audience`
   (an advertised Microsoft first-party audience is a finding, never requested), else the
   configured one;
3. identity: which runtime and identity this process has (variable names, never values);
4. token: ask that identity for a token, through the same `IdentityCredential` a real call
   uses; when the identity endpoint refuses, ask it once more directly so its own status,
   body and ``x-tenantops-diagnostic`` header are shown (azure-identity reduces them to one
   line, and App Service hides Entra's answer behind a vague 500);
5. claims: the token's aud, iss, tid, roles and expiry beside what the API expects;
6. call: the URL with the token, only over https or to this machine, following no redirect;
   a 403 to a managed identity also says whether its endpoint served a cached token issued
   before a role was assigned (Azure caches managed-identity tokens for around 24 hours).

The verdict is the first failing step's finding and fix; the report is OK (exit code 0) only
when the call succeeds. No token or secret is ever part of the report.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from tenantops.config import IdentitySettings
from tenantops.errors import (
    AudienceDiscoveryError,
    AudienceError,
    ConfigError,
    CredentialUnavailableError,
    InsecureTransportError,
    TokenRequestError,
)
from tenantops.identity._audience import Audience, parse_audience
from tenantops.identity._challenge import BearerChallenge, parse_bearer_challenge
from tenantops.identity._client import require_secure_destination
from tenantops.identity._credential import BearerToken, IdentityCredential
from tenantops.identity._discovery import metadata_url, pin_advertised
from tenantops.identity._refusals import VAGUE_500, explain_refusal
from tenantops.identity._rejection import Rejection, _single_role
from tenantops.identity._runtimes import DIAGNOSTIC_HEADER, EndpointAnswer, request_token
from tenantops.identity._sources import ImdsProbe, SourceCheck, check_sources, probe_imds
from tenantops.identity._token import DecodedToken, is_arm_audience
from tenantops.log import redact

__all__ = ["Doctor", "DoctorReport", "Step", "StepStatus", "Verdict", "run_doctor"]

StepStatus = Literal["ok", "warn", "fail", "skip"]

_VARIABLES = (
    "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
    "MSI_ENDPOINT", "MSI_SECRET", "AZURE_POD_IDENTITY_AUTHORITY_HOST", "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_AUTHORITY_HOST",
)
_CACHE_AGE_SECONDS = 24 * 3600
"""Microsoft: "The back-end services for managed identities maintain a cache per resource URI
for around 24 hours ... There's currently no way to force a token refresh." (App Service docs,
overview-managed-identity; managed identities FAQ)."""
_CACHED = re.compile(r"^cached token served: issued at (?P<issued>\S+) .*?roles assigned now: "
                     r"(?P<now>[^;]*?)(?: \(different[^)]*\))?; a new token is issued after "
                     r"(?P<renew>\S+)$")
_CONFIGURE = ("pass --audience with the API app registration's client ID (Entra portal: App "
              "registrations, the API, 'Application (client) ID'), or set "
              "TENANTOPS_IDENTITY__AUDIENCE / [identity] audience")


@dataclass
class Step:
    """One step of the diagnosis: what was checked, what was found, what to do next."""

    name: str
    title: str
    status: StepStatus
    finding: str
    next: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    summary: str
    fix: str


@dataclass
class DoctorReport:
    """The steps and the verdict. `render` and `to_json` are redacted on the way out."""

    url: str
    steps: list[Step]
    verdict: Verdict

    @property
    def exit_code(self) -> int:
        return 0 if self.verdict.ok else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ok": self.verdict.ok,
            "verdict": {"ok": self.verdict.ok, "summary": self.verdict.summary,
                        "fix": self.verdict.fix},
            "steps": [
                {"name": s.name, "title": s.title, "status": s.status, "finding": s.finding,
                 "next": s.next, "details": s.details}
                for s in self.steps
            ],
        }

    def to_json(self) -> str:
        return redact(json.dumps(self.to_dict(), indent=2))

    def render(self) -> str:
        lines = [f"tenantops auth doctor {self.url}", ""]
        for number, step in enumerate(self.steps, 1):
            lines.append(f"[{step.status:>4}] {number}. {step.title}")
            lines.extend(f"       {line}" for line in step.finding.splitlines())
            lines.append(f"       next: {step.next}")
        lines.append("")
        if self.verdict.ok:
            lines.append(f"Verdict: OK. {self.verdict.summary}")
        else:
            lines.append(f"Verdict: FAIL. {self.verdict.summary}")
            lines.append(f"Fix: {self.verdict.fix}")
        return redact("\n".join(lines))


def _memo(probe: ImdsProbe) -> ImdsProbe:
    result: list[str | None] = []

    def once() -> str | None:
        if not result:
            result.append(probe())
        return result[0]
    return once


@dataclass
class _State:
    """What the steps learn, in order."""

    challenge: BearerChallenge | None = None
    published: str | None = None
    published_where: str = ""
    published_origin: str = ""
    reachable: bool = True
    unauthenticated_ok: bool = False
    audience: Audience | None = None
    check: SourceCheck | None = None
    token: BearerToken | None = None
    decoded: DecodedToken | None = None


class Doctor:
    """Runs the diagnosis for one URL. Construction does no I/O.

    ``audience`` forces the audience (as ``--audience``); ``settings`` gives the identity source,
    user-assigned identity and configured audience. ``api_transport`` reaches the API,
    ``identity_transport`` the identity endpoint's direct probe; ``credential`` replaces the
    `IdentityCredential` built from ``settings`` (no retries: the doctor asks once).
    """

    def __init__(
        self,
        settings: IdentitySettings | None = None,
        *,
        audience: str | None = None,
        credential: IdentityCredential | None = None,
        api_transport: httpx.BaseTransport | None = None,
        identity_transport: httpx.BaseTransport | None = None,
        imds_probe: ImdsProbe = probe_imds,
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
    ) -> None:
        self._settings = settings or IdentitySettings()
        self._audience = audience
        self._imds_probe = _memo(imds_probe)
        self._owns_credential = credential is None
        self._credential = credential or IdentityCredential(
            self._settings, azure_options={"retry_total": 0}, imds_probe=self._imds_probe)
        self._api_transport = api_transport
        self._identity_transport = identity_transport
        self._clock = clock
        self._timeout = timeout

    def run(self, url: str) -> DoctorReport:
        steps: list[Step] = []
        state = _State()
        with httpx.Client(transport=self._api_transport, timeout=self._timeout) as api:
            steps.append(self._probe(url, api, state))
            steps.append(self._choose_audience(state))
            steps.append(self._identity(state))
            steps.append(self._token(state))
            steps.append(self._claims(state))
            steps.append(self._call(url, api, state))
        if self._owns_credential:
            self._credential.close()
        return DoctorReport(url, steps, self._verdict(steps))

    def _verdict(self, steps: list[Step]) -> Verdict:
        failed = next((s for s in steps if s.status == "fail"), None)
        if failed is None:
            call = steps[-1]
            return Verdict(True, call.finding.splitlines()[0], "nothing to fix")
        summary = failed.finding.splitlines()[0]
        title = failed.title[0].lower() + failed.title[1:]
        return Verdict(False, f"step {steps.index(failed) + 1} ({title}): {summary}",
                       failed.next)

    def _probe(self, url: str, api: httpx.Client, state: _State) -> Step:
        title = "Probe the URL without a token"
        try:
            response = api.get(url)
        except httpx.HTTPError as exc:
            state.reachable = False
            return Step("probe", title, "fail", f"GET {url} failed: {exc}",
                        "check the URL, that the API is running, and that this machine can "
                        "reach it (DNS, firewall, VNet integration, private endpoints)",
                        {"error": str(exc)})
        status = response.status_code
        challenge = parse_bearer_challenge(response.headers.get("www-authenticate"))
        state.challenge = challenge
        details: dict[str, Any] = {"status": status,
                                   "www_authenticate": response.headers.get("www-authenticate")}
        if challenge is not None and challenge.resource_id:
            state.published = challenge.resource_id
            state.published_where = (f"GET {url} without a token (WWW-Authenticate: Bearer ... "
                                     f"resource_id={challenge.resource_id})")
            state.published_origin = "advertised by the API (resource_id)"
        elif (published := self._metadata(url, api)) is not None:
            state.published, state.published_where = published
            state.published_origin = f"published by the API's metadata route ({metadata_url(url)})"
            details["metadata"] = {"url": metadata_url(url), "audience": published[0]}
            return Step("probe", title, "ok",
                        f"GET {url} answered {status} without naming an audience; the API's "
                        f"metadata route ({metadata_url(url)}) names {published[0]}",
                        "nothing: the API says which audience it expects", details)
        if 300 <= status < 400 and "location" in response.headers:
            return Step("probe", title, "warn",
                        f"GET {url} answered {status} and redirects to "
                        f"{response.headers['location']}",
                        "call the URL it redirects to, if you trust it; tenantops follows no "
                        "redirect with a token", details)
        if status == 401 and challenge is not None and challenge.resource_id:
            return Step("probe", title, "ok",
                        f"GET {url} answered 401 with WWW-Authenticate: Bearer ... "
                        f"resource_id={challenge.resource_id}"
                        + (f", tenant {challenge.tenant_id}" if challenge.tenant_id else ""),
                        "nothing: the API says which audience it expects", details)
        if status == 401:
            return Step("probe", title, "warn",
                        f"GET {url} answered 401 without naming the audience it expects (App "
                        "Service Authentication answers like this, often with 'You do not have "
                        "permission to view this directory or page.')", _CONFIGURE, details)
        if 200 <= status < 300:
            state.unauthenticated_ok = True
            return Step("probe", title, "warn",
                        f"GET {url} answered {status} without a token: this URL is not "
                        "protected, or is a public route",
                        "check that this is the URL you meant; the rest of the diagnosis still "
                        "shows what a token would look like", details)
        return Step("probe", title, "warn",
                    f"GET {url} answered {status} without a token, not 401, so it did not say "
                    "which audience it expects",
                    f"check the URL and method; {_CONFIGURE}", details)

    def _metadata(self, url: str, api: httpx.Client) -> tuple[str, str] | None:
        """The audience the tenantops metadata route publishes for ``url``'s API, if any."""
        meta = metadata_url(url)
        if meta is None:
            return None
        try:
            response = api.get(meta)
            data = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        if isinstance(data, dict) and data.get("service") == "tenantops" \
                and isinstance(data.get("audience"), str) and data["audience"]:
            return data["audience"], f"the API's metadata (GET {meta})"
        return None

    def _choose_audience(self, state: _State) -> Step:
        title = "Decide the audience to request"
        advertised = state.published
        if self._audience is not None:
            try:
                state.audience = parse_audience(self._audience)
            except AudienceError as exc:
                return Step("audience", title, "fail", str(exc),
                            f"use the API's client ID{f' {advertised}' if advertised else ''}")
            service = state.audience.first_party
            if service is not None and not (advertised and state.audience.matches(advertised)):
                return Step("audience", title, "warn",
                            f"you asked for {state.audience.resource}, which is {service.name}'s "
                            f"audience (a token for it {service.grants}); an API of your own "
                            "never accepts it: this is the audience the original 'You do not "
                            "have permission' problem is about"
                            + (f"; the API advertises {advertised}" if advertised else ""),
                            f"use --audience {advertised}" if advertised else
                            "use --audience with the API app registration's client ID",
                            {"audience": state.audience.resource, "advertised": advertised,
                             "first_party": service.name})
            if advertised and not state.audience.matches(advertised):
                return Step("audience", title, "warn",
                            f"you asked for {state.audience.resource}, but the API advertises "
                            f"{advertised}",
                            f"use --audience {advertised} (or leave --audience out)",
                            {"audience": state.audience.resource, "advertised": advertised})
            return Step("audience", title, "ok", f"requesting {state.audience.resource} "
                        "(given with --audience)", "nothing",
                        {"audience": state.audience.resource, "scope": state.audience.scope})
        if advertised:
            try:
                state.audience = pin_advertised(advertised, where=state.published_where,
                                                configured=self._settings.audience)
            except AudienceDiscoveryError as exc:
                return Step("audience", title, "fail",
                            "\n".join(str(exc).split(". Next: ", 1)[:1]),
                            "do not send this API a token for what it asks; check that the URL "
                            f"is the API you meant, and if it is, {_CONFIGURE}",
                            {"advertised": advertised})
            origin = state.published_origin
        elif self._settings.audience:
            try:
                state.audience = parse_audience(self._settings.audience)
            except AudienceError as exc:
                return Step("audience", title, "fail", f"the configured audience: {exc}",
                            _CONFIGURE)
            origin = "from configuration (the API did not advertise one)"
        else:
            return Step("audience", title, "fail",
                        "the API did not say which audience it expects, and no audience is "
                        "configured", _CONFIGURE)
        return Step("audience", title, "ok",
                    f"requesting {state.audience.resource}, {origin}; managed identity "
                    f"resource={state.audience.resource}, client credentials scope "
                    f"{state.audience.scope}", "nothing",
                    {"audience": state.audience.resource, "scope": state.audience.scope})

    def _identity(self, state: _State) -> Step:
        title = "Find this process's identity"
        environ = dict(os.environ)
        present = [name for name in _VARIABLES if environ.get(name)]
        details: dict[str, Any] = {"variables_set": present}
        try:
            checks = check_sources(environ, identity=self._settings.identity,
                                   imds_probe=self._imds_probe)
            details["sources"] = [{"source": c.source, "available": c.available,
                                   "detail": c.detail} for c in checks]
            state.check = self._credential.resolve()
        except (CredentialUnavailableError, ConfigError) as exc:
            return Step("identity", title, "fail", str(exc),
                        "run where an identity is available, or configure one (see above)",
                        details)
        check = state.check
        forced = " (forced by the source setting)" if self._settings.source else ""
        lines = [f"using {check.describe()}{forced}",
                 f"variables set: {', '.join(present) if present else '(none)'}"]
        status: StepStatus = "ok"
        next_step = "nothing"
        api_id = state.audience.client_id if state.audience else None
        if (check.selector is not None and check.selector.origin == "AZURE_CLIENT_ID"
                and check.source == "managed-identity" and api_id
                and check.selector.value == api_id):
            status = "warn"
            lines.append("AZURE_CLIENT_ID holds the API's client ID; azure-identity uses that "
                         "variable to pick a user-assigned managed identity")
            next_step = ("unset AZURE_CLIENT_ID (system-assigned identity) or set it to the "
                         "user-assigned identity's client ID")
        details["source"] = check.source
        details["runtime"] = check.runtime.name if check.runtime else None
        details["selector"] = (f"{check.selector.kind}={check.selector.value}"
                               if check.selector else None)
        return Step("identity", title, status, "\n".join(lines), next_step, details)

    def _token(self, state: _State) -> Step:
        title = "Get a token for the audience"
        if state.audience is None or state.check is None:
            return Step("token", title, "skip", "no audience or no identity (see above)",
                        "fix the steps above first")
        try:
            state.token = self._credential.get_token(state.audience)
        except CredentialUnavailableError as exc:
            return Step("token", title, "fail", str(exc), "configure an identity (see above)")
        except TokenRequestError as exc:
            return self._refused(state, exc)
        now = self._clock()
        state.decoded = state.token.decode()
        return Step("token", title, "ok",
                    f"got a token for {state.audience.resource}; it "
                    f"{state.decoded.expiry(now)}", "nothing",
                    {"expires_on": state.token.expires_on})

    def _refused(self, state: _State, exc: TokenRequestError) -> Step:
        """The identity endpoint refused: ask it directly so nothing is hidden."""
        title = "Get a token for the audience"
        check, audience = state.check, state.audience
        assert check is not None
        assert audience is not None
        details: dict[str, Any] = {"error": str(exc)}
        runtime = check.runtime
        answer: EndpointAnswer | None = None
        if runtime is not None and runtime.asked_directly:
            try:
                with httpx.Client(transport=self._identity_transport,
                                  timeout=self._timeout) as http:
                    response = request_token(runtime, dict(os.environ), audience.resource,
                                             check.selector, http)
                if response.status_code != 200:
                    answer = EndpointAnswer.from_parts(response.status_code, response.headers,
                                                       response.text)
                else:
                    details["direct_request"] = ("HTTP 200 this time; the refusal may have "
                                                 "been transient")
            except (httpx.HTTPError, ValueError, OSError) as direct:
                details["direct_request"] = f"failed: {direct}"
        if answer is None:
            return Step("token", title, "fail", str(exc), "see the explanation above", details)
        details["endpoint"] = {"status": answer.status, "message": answer.message,
                               "diagnostic": answer.diagnostic, "server": answer.server,
                               "correlation_id": answer.correlation_id}
        explanation = explain_refusal(
            answer.describe(), resource=audience.resource, answer=answer,
            api_client_id=audience.client_id,
            selector_from_azure_client_id=check.selector is not None
            and check.selector.origin == "AZURE_CLIENT_ID")
        assert runtime is not None
        lines = [f"the {runtime.title} endpoint refused resource={audience.resource}: "
                 f"HTTP {answer.status} {answer.message!r}"]
        if answer.diagnostic and answer.diagnostic not in answer.message:
            lines.append(f"what Entra really said (x-tenantops-diagnostic): {answer.diagnostic}")
        elif VAGUE_500 in answer.message:
            lines.append("Entra's real answer is hidden behind this vague 500; "
                         "the two usual causes follow")
        if answer.correlation_id:
            lines.append(f"correlation ID: {answer.correlation_id}")
        lines.append(f"meaning: {explanation}")
        return Step("token", title, "fail", "\n".join(lines), explanation, details)

    def _claims(self, state: _State) -> Step:
        title = "Compare the token with what the API expects"
        decoded, audience = state.decoded, state.audience
        if decoded is None or audience is None:
            return Step("claims", title, "skip", "no token (see above)",
                        "fix the steps above first")
        now = self._clock()
        expected = state.published or audience.resource
        tenant = state.challenge.tenant_id if state.challenge else None
        problems: list[tuple[StepStatus, str, str]] = []
        lines: list[str] = []
        aud = decoded.aud or "(none)"
        if Audience(expected).matches(aud):
            lines.append(f"aud   {aud}: matches the API ({expected})")
        else:
            arm = " (Azure Resource Manager, the default of 'az account get-access-token')" \
                if is_arm_audience(aud) else ""
            lines.append(f"aud   {aud}{arm}: the API expects {expected} or api://{expected}")
            problems.append(("fail", f"the token's audience is {aud}{arm}, the API expects "
                             f"{expected}",
                             f"request resource={expected} (client credentials: scope "
                             f"api://{expected}/.default)"
                             + (f"; pass --audience {expected} or leave --audience out"
                                if self._audience else "")))
        tid = decoded.tid or "(none)"
        if tenant and len(tenant) == 36 and tenant.lower() != tid.lower():
            lines.append(f"tid   {tid}: the API trusts tenant {tenant}")
            problems.append(("fail", f"the token is from tenant {tid}, the API trusts {tenant}",
                             "use an identity of the API's tenant (AZURE_TENANT_ID)"))
        else:
            lines.append(f"tid   {tid}" + (": matches the API's tenant" if tenant else ""))
        iss = decoded.iss or "(none)"
        version = "v2" if iss.rstrip("/").endswith("/v2.0") else "v1"
        lines.append(f"iss   {iss} ({version} issuer)")
        if decoded.tid and decoded.tid not in iss:
            problems.append(("warn", f"the issuer {iss} does not contain the tenant {decoded.tid}",
                             "check the token's origin"))
        roles = ", ".join(decoded.roles) if decoded.roles else "(none)"
        lines.append(f"roles {roles}")
        if not decoded.roles:
            problems.append(("warn", "the token carries no app roles; routes that need one "
                             "(Tenants.Read/Write/Delete) answer 403",
                             "assign the identity an app role on the API (see the call step)"))
        lines.append(f"appid {decoded.app_id}  oid {decoded.oid}")
        lines.append(f"exp   {decoded.expiry(now)}")
        exp = decoded.expires_on
        if exp is not None and exp <= now:
            problems.append(("fail", f"the token {decoded.expiry(now)}", "get a new token"))
        status: StepStatus = "ok"
        next_step = "nothing"
        for level, summary, fix in problems:
            if level == "fail" or status == "ok":
                status, next_step = level, fix
                lines.insert(0, summary)
                if level == "fail":
                    break
        details = {"claims": decoded.summary(), "expected_audience": expected,
                   "expected_tenant": tenant}
        return Step("claims", title, status, "\n".join(lines), next_step, details)

    def _call(self, url: str, api: httpx.Client, state: _State) -> Step:
        title = "Call the URL with the token"
        if state.token is None or not state.reachable:
            return Step("call", title, "skip", "no token, or the API is unreachable (see above)",
                        "fix the steps above first")
        try:
            require_secure_destination(url)
        except InsecureTransportError as exc:
            finding, _, fix = str(exc).partition(" Next: ")
            return Step("call", title, "fail", finding, fix or "use https")
        try:
            response = api.get(url, headers={"Authorization": f"Bearer {state.token.value}"})
        except httpx.HTTPError as exc:
            return Step("call", title, "fail", f"GET {url} failed: {exc}",
                        "check that the API is reachable from here")
        status = response.status_code
        if 300 <= status < 400 and "location" in response.headers:
            return Step("call", title, "fail",
                        f"GET {url} answered {status} and redirects to "
                        f"{response.headers['location']}; the token was not sent there",
                        "call the URL it redirects to directly, if you trust it",
                        {"status": status, "location": response.headers["location"]})
        if 200 <= status < 300:
            return Step("call", title, "ok", f"GET {url} answered {status}: the call works",
                        "nothing", {"status": status})
        if status in (401, 403):
            rejection = Rejection.from_response(response)
            now = self._clock()
            message = rejection.message(now)
            finding = "\n".join(line for line in message.splitlines()
                                if not line.startswith("Next:"))
            next_step = rejection.next_step(now)
            cached = self._cached_token(state, rejection, now) if status == 403 else None
            if cached is not None:
                finding = f"{finding}\n{cached[0]}"
                next_step = cached[1]
            return Step("call", title, "fail", finding, next_step,
                        {"status": status, "error": rejection.error,
                         "error_description": rejection.description,
                         "expected": rejection.body.expected if rejection.body else None,
                         "received": rejection.body.received if rejection.body else None})
        return Step("call", title, "fail",
                    f"GET {url} answered {status} with the token: the token was accepted (not "
                    "401/403) but the call failed",
                    "check the URL, and the API's logs for this request", {"status": status})


    def _cached_token(self, state: _State, rejection: Rejection,
                      now: float) -> tuple[str, str] | None:
        """For a managed identity's 403: whether the token predates a role assignment because
        its endpoint serves cached tokens, as (finding, next step); None when it does not apply.

        The emulator says so in ``x-tenantops-diagnostic`` (asked once more, directly); against
        Azure, which says nothing, a token issued minutes ago is the clue."""
        check, decoded = state.check, state.decoded
        if check is None or check.source != "managed-identity" or decoded is None:
            return None
        iat = decoded.claims.get("iat")
        if not isinstance(iat, int | float):
            return None
        issued = dt.datetime.fromtimestamp(iat, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        role = _single_role(rejection.body.expected if rejection.body else None)
        diagnostic = self._endpoint_diagnostic(state)
        match = _CACHED.match(diagnostic or "")
        if match is not None and role is not None \
                and role in [r.strip() for r in match["now"].split(",")]:
            return (f"the managed-identity endpoint served a cached token "
                    f"(x-tenantops-diagnostic): {diagnostic}"), (
                f"the identity holds {role} now, but the token was issued at "
                f"{match['issued']}, before the role was assigned, and the endpoint keeps "
                f"serving it until {match['renew']}. Wait until then (Azure offers no way to "
                "force a refresh); locally, restart the emulator or start it with "
                "--mi-token-cache-hours 0")
        age = now - iat
        if age < 300:
            return None
        renew = dt.datetime.fromtimestamp(iat + _CACHE_AGE_SECONDS, dt.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        return (f"the token was issued at {issued} ({int(age // 60)} min ago): managed-identity "
                "endpoints cache tokens per resource for around 24 hours, so a role assigned "
                f"after {issued} is not in it yet",
                f"{rejection.next_step(now)}. If the role was assigned after {issued}, wait until "
                f"about {renew}, when the endpoint issues a new token (Azure offers no way to "
                "force a refresh)")

    def _endpoint_diagnostic(self, state: _State) -> str | None:
        """The identity endpoint's ``x-tenantops-diagnostic`` for this audience, asked once."""
        check, audience = state.check, state.audience
        runtime = check.runtime if check is not None else None
        if check is None or audience is None or runtime is None or not runtime.asked_directly:
            return None
        try:
            with httpx.Client(transport=self._identity_transport, timeout=self._timeout) as http:
                response = request_token(runtime, dict(os.environ), audience.resource,
                                         check.selector, http)
        except (httpx.HTTPError, ValueError, OSError):
            return None
        return response.headers.get(DIAGNOSTIC_HEADER) if response.status_code == 200 else None


def run_doctor(url: str, settings: IdentitySettings | None = None, *,
               audience: str | None = None, **options: Any) -> DoctorReport:
    """`Doctor(settings, audience=audience, **options).run(url)`."""
    return Doctor(settings, audience=audience, **options).run(url)
