"""`IdentityCredential`: tokens for an audience from exactly one identity source.

The source is the one configured (``IdentitySettings.source`` / ``--source``) or, without one,
the first that is present in azure-identity's order (environment, workload identity, managed
identity, Azure CLI). Once a source is chosen, its failure is reported as it is: tenantops never
falls back to another identity, because a different identity is a different security principal
(docs/decisions.md, 2026-11-30). Unlike DefaultAzureCredential, which moves on when a managed
identity endpoint refuses (azure-identity 1.27 reports those refusals as
CredentialUnavailableError).

Errors have two levels, as in azure-identity:
`CredentialUnavailableError` ("could not even try": nothing usable here) and
`TokenRequestError` ("tried and failed": the platform refused), each naming the source, the
resource, the platform's words (the identity endpoint's own status, body and diagnostic header
when one answered) and the next step.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from azure.core.credentials import SupportsTokenInfo
from azure.core.exceptions import AzureError, ClientAuthenticationError, ServiceRequestError
from azure.core.pipeline import PipelineResponse
from azure.identity import CredentialUnavailableError as AzureCredentialUnavailableError

from tenantops.config import IdentitySettings
from tenantops.errors import CredentialUnavailableError, TokenRequestError
from tenantops.identity._audience import Audience
from tenantops.identity._refusals import explain_refusal
from tenantops.identity._runtimes import EndpointAnswer
from tenantops.identity._sources import (
    DETECTION_ORDER,
    SOURCES,
    ImdsProbe,
    SourceCheck,
    probe_imds,
)
from tenantops.identity._token import DecodedToken, decode_token

__all__ = ["BearerToken", "IdentityCredential", "TokenProvider"]

_SOURCE_SETTING = "the identity source setting (--source, TENANTOPS_IDENTITY__SOURCE or " \
    "[identity] source)"
_NEXT_WHEN_NONE = (
    "Next: run where a managed identity is attached (Azure Automation, Functions/App Service, "
    "a VM, Arc), set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for a service "
    "principal, or run 'az login'; or force a source with --source."
)
WAYS_TO_PROVIDE = (
    "Ways to provide one:\n"
    "  - locally, an identity of the emulator: export $(tenantops emulator env --identity "
    "aa-onboarding --runtime automation | xargs)\n"
    "  - a service principal: AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or "
    "AZURE_CLIENT_CERTIFICATE_PATH)\n"
    "  - a managed identity: run in Azure (Automation, Functions/App Service, a VM, Arc); "
    "--identity <client-id> (or AZURE_CLIENT_ID) names a user-assigned one, and --source "
    "managed-identity asks Azure IMDS without probing it first\n"
    "  - the Azure CLI's signed-in account: az login"
)


@dataclass(frozen=True)
class BearerToken:
    """An access token and when to stop using it. ``value`` never appears in ``repr``."""

    value: str = field(repr=False)
    expires_on: int
    refresh_on: int | None = None
    source: str = ""

    def decode(self) -> DecodedToken:
        return decode_token(self.value)


class TokenProvider(Protocol):
    """Anything that returns a token for an audience; `IdentityCredential` is the real one."""

    def get_token(self, audience: Audience) -> BearerToken: ...


class _AnswerCapture:
    """The last refusal an identity endpoint sent on this thread (azure-core response hook)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def reset(self) -> None:
        self._local.answer = None

    @property
    def answer(self) -> EndpointAnswer | None:
        value: EndpointAnswer | None = getattr(self._local, "answer", None)
        return value

    def record(self, answer: EndpointAnswer) -> None:
        self._local.answer = answer

    def hook(self, response: PipelineResponse[Any, Any]) -> None:
        http = response.http_response
        status = http.status_code
        arc_challenge = status == 401 and "basic" in http.headers.get(
            "www-authenticate", "").lower()
        if status >= 400 and not arc_challenge:
            self.record(EndpointAnswer.from_parts(status, dict(http.headers), http.text()))


def _azure_message(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    text = " ".join(str(message).split())
    return text if len(text) <= 600 else text[:600] + "..."


class IdentityCredential:
    """Gets tokens from one identity source, chosen on first use. Construction does no I/O.

    ``settings`` gives ``source`` (force one), ``identity`` (user-assigned identity: client ID,
    ``object_id=<GUID>`` or resource ID; or the app's client ID for app-based sources).
    ``azure_options`` are passed to the azure-identity credential (``retry_total=0`` in tests,
    say). ``imds_probe`` decides whether IMDS exists when nothing else is configured.

    The process environment is read when the source is chosen, as azure-identity reads it.
    Thread-safe; it does not cache tokens itself (see `TokenCache`).
    """

    def __init__(
        self,
        settings: IdentitySettings | None = None,
        *,
        azure_options: Mapping[str, Any] | None = None,
        imds_probe: ImdsProbe = probe_imds,
    ) -> None:
        self._settings = settings or IdentitySettings()
        self._azure_options = dict(azure_options or {})
        self._imds_probe = imds_probe
        self._lock = threading.Lock()
        self._check: SourceCheck | None = None
        self._skipped: list[SourceCheck] = []
        self._credential: SupportsTokenInfo | None = None
        self._capture = _AnswerCapture()

    @property
    def source(self) -> SourceCheck | None:
        """The chosen source, once `resolve` or `get_token` has run."""
        return self._check

    def resolve(self) -> SourceCheck:
        """Choose the source (may probe IMDS); raise `CredentialUnavailableError` if none fits."""
        with self._lock:
            if self._check is None:
                self._check, self._skipped = self._choose(dict(os.environ))
            return self._check

    def _choose(self, environ: Mapping[str, str]) -> tuple[SourceCheck, list[SourceCheck]]:
        identity = self._settings.identity
        forced = self._settings.source
        if forced is not None:
            check = SOURCES[forced].check(environ, identity=identity, forced=True,
                                          imds_probe=self._imds_probe)
            if not check.available:
                raise CredentialUnavailableError(
                    f"identity source {forced!r} was chosen by {_SOURCE_SETTING}, but it cannot "
                    f"be used here: {check.detail}. Next: set what it needs, or choose another "
                    "source.")
            return check, []
        skipped: list[SourceCheck] = []
        for name in DETECTION_ORDER:
            check = SOURCES[name].check(environ, identity=identity, forced=False,
                                        imds_probe=self._imds_probe)
            if check.available:
                return check, skipped
            skipped.append(check)
        tried = "\n".join(f"  - {c.describe()}" for c in skipped)
        raise CredentialUnavailableError(
            "no identity was found here, so there is no token to call the API with. Looked "
            f"for, in azure-identity's order:\n{tried}\n{WAYS_TO_PROVIDE}")

    def _azure_credential(self, check: SourceCheck) -> SupportsTokenInfo:
        with self._lock:
            if self._credential is None:
                options = {**self._azure_options, "raw_response_hook": self._capture.hook}
                try:
                    self._credential = SOURCES[check.source].build(
                        check, dict(os.environ), options, self._capture.record)
                except (ValueError, OSError) as exc:
                    raise CredentialUnavailableError(
                        f"{check.describe()}; the credential could not be created: {exc}. "
                        "Next: fix the setting it names.") from exc
            return self._credential

    def get_token(self, audience: Audience) -> BearerToken:
        """A token for ``audience`` (scope ``<resource>/.default``) from the chosen source."""
        check = self.resolve()
        credential = self._azure_credential(check)
        self._capture.reset()
        try:
            info = credential.get_token_info(audience.scope)
        except AzureCredentialUnavailableError as exc:
            answer = self._capture.answer
            if answer is None:
                raise self._unavailable(check, exc) from exc
            raise self._refused(check, audience, exc, answer) from exc
        except ServiceRequestError as exc:
            runtime = check.runtime
            if runtime is not None and not runtime.detected:
                raise self._unavailable(check, exc) from exc
            raise self._refused(check, audience, exc, None) from exc
        except (ClientAuthenticationError, AzureError, ValueError, OSError) as exc:
            raise self._refused(check, audience, exc, self._capture.answer) from exc
        return BearerToken(info.token, int(info.expires_on), info.refresh_on, check.describe())

    def _unavailable(self, check: SourceCheck, exc: BaseException) -> CredentialUnavailableError:
        others = "".join(f"\n  - {c.describe()}" for c in self._skipped)
        also = f"\nSources not present:{others}" if others else ""
        return CredentialUnavailableError(
            f"{check.describe()}; but it could not even try: {_azure_message(exc)}{also}\n"
            f"{_NEXT_WHEN_NONE}")

    def _refused(self, check: SourceCheck, audience: Audience, exc: BaseException,
                 answer: EndpointAnswer | None) -> TokenRequestError:
        said = answer.describe() if answer is not None else _azure_message(exc)
        selector = check.selector
        explanation = explain_refusal(
            f"{said} {_azure_message(exc)}", resource=audience.resource, answer=answer,
            api_client_id=audience.client_id,
            selector_from_azure_client_id=selector is not None
            and selector.origin == "AZURE_CLIENT_ID")
        return TokenRequestError(
            f"{check.describe()}; it asked for a token for resource {audience.resource!r} and "
            f"was refused: {said}. What it means: {explanation}")

    def close(self) -> None:
        """Close the azure-identity credential's connections (it is rebuilt on next use)."""
        with self._lock:
            closer = getattr(self._credential, "close", None)
            if callable(closer):
                closer()
            self._credential = None

    def __enter__(self) -> IdentityCredential:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
