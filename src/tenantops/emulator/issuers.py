"""Outside token issuers: the ones the emulator plays (an AKS cluster's service-account issuer,
GitHub Actions) and the ones it only knows by their keys.

A hosted issuer lives at ``<authority>/issuers/<name>``: an OIDC discovery document, a JWKS
(at ``/openid/v1/jwks``, Kubernetes' path), and tokens minted on request for any subject and
audience, signed with the issuer's own keys (kept in ``<data>/issuers/<name>``, separate from
the emulator's Entra keys). These are the tokens a workload presents to Entra as federated
assertions; `IssuerRegistry.signing_keys` is what Entra checks their signature against.

The emulator never fetches an outside issuer's metadata (it works offline): an issuer with a
``url`` is trusted with the keys of its ``jwks_file``, and without one its assertions are
refused as Entra refuses an issuer whose metadata it cannot reach (AADSTS90061).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tenantops.emulator.directory import FEDERATION_AUDIENCE, Directory, Issuer
from tenantops.emulator.keys import KeyStore
from tenantops.errors import EmulatorError

__all__ = ["DEFAULT_FEDERATED_TOKEN_LIFETIME", "IssuerRegistry", "issuer_routes"]

DEFAULT_FEDERATED_TOKEN_LIFETIME = 3600
"""A projected service-account token's default lifetime on AKS (azure-workload-identity:
``azure.workload.identity/service-account-token-expiration`` defaults to 3600 s)."""
_MAX_LIFETIME = 86400


class IssuerRegistry:
    """The directory's issuers, their URLs and keys. Construction does no I/O."""

    def __init__(
        self,
        directory: Callable[[], Directory],
        data_dir: Path,
        authority: Callable[[], str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._directory = directory
        self._data_dir = data_dir
        self._authority = authority
        self._clock = clock
        self._stores: dict[str, KeyStore] = {}

    def url(self, issuer: Issuer) -> str:
        return issuer.url or f"{self._authority()}/issuers/{issuer.name}"

    def resolve(self, value: str) -> str:
        """A federated credential's ``issuer``: a URL as given, or an issuer's name as its URL."""
        if "://" in value:
            return value
        issuer = self._directory().issuer_by_name(value)
        return self.url(issuer) if issuer is not None else value

    def by_url(self, url: str) -> Issuer | None:
        return next((i for i in self._directory().issuers if self.url(i) == url), None)

    def hosted(self, name: str) -> Issuer:
        issuer = self._directory().issuer_by_name(name)
        if issuer is None or not issuer.hosted:
            hosted = [i.name for i in self._directory().issuers if i.hosted]
            raise EmulatorError(
                f"no issuer named {name!r} is played by the emulator; hosted issuers: "
                f"{', '.join(hosted) or '(none)'} (add [[issuers]] name = \"{name}\" to the "
                "directory)")
        return issuer

    def _store(self, issuer: Issuer) -> KeyStore:
        store = self._stores.get(issuer.name)
        if store is None:
            store = KeyStore(self._data_dir / "issuers" / issuer.name, grace_seconds=86400.0,
                             clock=self._clock)
            self._stores[issuer.name] = store
        return store

    def signing_keys(self, issuer: Issuer) -> dict[str, jwt.PyJWK] | None:
        """The issuer's published keys by ``kid``, or None when its metadata is unavailable."""
        if issuer.hosted:
            return {k.kid: jwt.PyJWK(k.public_jwk()) for k in self._store(issuer).published()}
        if issuer.jwks_file is None:
            return None
        try:
            data = json.loads(issuer.jwks_file.read_text(encoding="utf-8"))
            return {str(k["kid"]): jwt.PyJWK(k) for k in data["keys"] if "kid" in k}
        except (OSError, ValueError, KeyError, TypeError, jwt.PyJWKError):
            return None

    def discovery(self, issuer: Issuer) -> dict[str, Any]:
        url = self.url(issuer)
        return {
            "issuer": url,
            "jwks_uri": f"{url}/openid/v1/jwks",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def jwks(self, issuer: Issuer) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self._store(issuer).published()]}

    def mint(self, name: str, subject: str, audience: str = FEDERATION_AUDIENCE,
             lifetime: int = DEFAULT_FEDERATED_TOKEN_LIFETIME) -> str:
        """A token from the hosted issuer ``name`` about ``subject``, as a Kubernetes projected
        service-account token is shaped (``aud`` a list) and GitHub's OIDC token is dated."""
        issuer = self.hosted(name)
        if not subject:
            raise EmulatorError("a federated token needs a subject (for example "
                                "system:serviceaccount:<namespace>:<name> or "
                                "repo:<org>/<repo>:ref:refs/heads/main)")
        if not 0 < lifetime <= _MAX_LIFETIME:
            raise EmulatorError(f"lifetime = {lifetime}: between 1 and {_MAX_LIFETIME} seconds")
        key = self._store(issuer).active()
        now = int(self._clock())
        claims = {"iss": self.url(issuer), "sub": subject, "aud": [audience], "iat": now,
                  "nbf": now, "exp": now + lifetime, "jti": str(uuid.uuid4())}
        return jwt.encode(claims, key.private_key, algorithm="RS256",
                          headers={"kid": key.kid, "typ": "JWT"})


def issuer_routes(issuers: IssuerRegistry) -> list[Route]:
    def _issuer(request: Request) -> Issuer | Response:
        try:
            return issuers.hosted(request.path_params["name"])
        except EmulatorError as exc:
            return JSONResponse({"error": "not_found", "error_description": str(exc)},
                                status_code=404)

    def discovery(request: Request) -> Response:
        issuer = _issuer(request)
        if isinstance(issuer, Response):
            return issuer
        return JSONResponse(issuers.discovery(issuer))

    def jwks(request: Request) -> Response:
        issuer = _issuer(request)
        if isinstance(issuer, Response):
            return issuer
        return JSONResponse(issuers.jwks(issuer), headers={"Cache-Control": "max-age=3600"})

    async def mint(request: Request) -> Response:
        """Admin: a token from a hosted issuer (what kubelet or GitHub would hand a workload)."""
        if request.headers.get("content-type", "").startswith("application/json"):
            body = await request.json()
            params = {str(k): v for k, v in body.items()} if isinstance(body, dict) else {}
        else:
            params = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        try:
            lifetime = int(params.get("lifetime") or DEFAULT_FEDERATED_TOKEN_LIFETIME)
            token = issuers.mint(request.path_params["name"], str(params.get("subject") or ""),
                                 str(params.get("audience") or FEDERATION_AUDIENCE), lifetime)
        except ValueError:
            return JSONResponse({"error": "invalid_request",
                                 "error_description": "lifetime must be a number of seconds"},
                                status_code=400)
        except EmulatorError as exc:
            return JSONResponse({"error": "invalid_request", "error_description": str(exc)},
                                status_code=400)
        return JSONResponse({"token": token}, headers={"Cache-Control": "no-store"})

    return [
        Route("/issuers/{name:str}/.well-known/openid-configuration", discovery),
        Route("/issuers/{name:str}/openid/v1/jwks", jwks),
        Route("/_emulator/issuers/{name:str}/token", mint, methods=["POST"]),
    ]
