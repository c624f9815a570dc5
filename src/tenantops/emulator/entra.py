"""Entra ID's endpoints on the same paths as login.microsoftonline.com.

OIDC discovery (v1 and v2), JWKS, the v2 token endpoint (client_credentials,
authorization_code with PKCE, refresh_token), the v1 token endpoint (``resource``) and the
authorize endpoint with a sign-in page. A confidential client proves itself with a secret (form
or Basic) or a client assertion: a JWT signed with its certificate, or a federated token from an
outside issuer (`tenantops.emulator.assertions`). A client switches to the emulator by
changing the authority host only. Errors carry Entra's AADSTS codes and wording.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tenantops.emulator.directory import AppRegistration, ManagedIdentity
from tenantops.emulator.signin import render_error, render_form_post, render_signin
from tenantops.emulator.state import (
    CODE_LIFETIME,
    REFRESH_LIFETIME,
    AuthorizationCode,
    EmulatorState,
    RefreshGrant,
)
from tenantops.emulator.tokens import AadstsError, ClientCredentialKind, TokenFactory

__all__ = ["entra_routes", "redirect_uri_allowed"]

_LOOPBACK = {"localhost", "127.0.0.1", "[::1]", "::1"}
_OIDC_SCOPES = {"openid", "profile", "offline_access", "email"}


def redirect_uri_allowed(app: AppRegistration, redirect_uri: str) -> bool:
    """Exact match, except that loopback http URIs match on any port, as Entra allows."""
    if redirect_uri in app.redirect_uris:
        return True
    asked = urlsplit(redirect_uri)
    if asked.scheme != "http" or asked.hostname not in _LOOPBACK:
        return False
    for registered in app.redirect_uris:
        reg = urlsplit(registered)
        if (reg.scheme, reg.hostname, reg.path or "/") == (
            asked.scheme, asked.hostname, asked.path or "/"
        ):
            return True
    return False


def _error(exc: AadstsError, state: EmulatorState) -> JSONResponse:
    correlation = TokenFactory.new_correlation_id()
    return JSONResponse(exc.body(correlation), status_code=exc.status,
                        headers={"x-ms-request-id": correlation})


@dataclass(frozen=True)
class _ClientProof:
    """What a token request carries to identify its client: never logged (secrets)."""

    client_id: str
    secret: str | None = field(default=None, repr=False)
    assertion: str | None = field(default=None, repr=False)
    assertion_type: str | None = None


def _client_proof(request: Request, form: dict[str, str]) -> _ClientProof:
    """client_id and a secret from the form (client_secret_post) or Basic auth, or a client
    assertion (private_key_jwt, federated)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:]).decode()
            client_id, _, secret = decoded.partition(":")
            return _ClientProof(client_id, secret)
        except (ValueError, UnicodeDecodeError):
            pass
    return _ClientProof(form.get("client_id", ""), form.get("client_secret"),
                        form.get("client_assertion"), form.get("client_assertion_type"))


def entra_routes(state: EmulatorState) -> list[Route]:
    tokens = state.tokens

    def check_tenant(tenant: str) -> None:
        if tenant.lower() not in {state.directory.tenant_id.lower(), "common", "organizations"}:
            raise AadstsError(
                "invalid_tenant", 90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud.",
            )

    def find_client_error(client_id: str) -> AadstsError:
        return AadstsError(
            "unauthorized_client", 700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{state.directory.tenant_id}'. This can happen if the application has not been "
            "installed by the administrator of the tenant or consented to by any user in the "
            "tenant. You may have sent your authentication request to the wrong tenant.",
        )

    def find_client(client_id: str) -> AppRegistration:
        app = state.directory.app_by_client_id(client_id) if client_id else None
        if app is None or app.first_party:
            raise find_client_error(client_id)
        return app

    def public_with_credential(app: AppRegistration) -> AadstsError:
        # Entra docs, error codes: AADSTS700025 InvalidClientPublicClientWithCredential.
        return AadstsError("invalid_client", 700025, "Client is public so neither "
                           "'client_assertion' nor 'client_secret' should be presented.",
                           status=401)

    def authenticate(proof: _ClientProof, tenant: str, *, client_credentials: bool
                     ) -> tuple[AppRegistration | ManagedIdentity, ClientCredentialKind]:
        """The client and how it proved itself, or Entra's refusal.

        ``client_credentials``: the grant always needs a credential, and a user-assigned
        managed identity may be the client (with a federated assertion); otherwise (a user's
        code or refresh token) a public client needs none and the client must be an app."""
        if proof.assertion is not None:
            asserted = state.assertions.verify(proof.assertion_type, proof.assertion,
                                               proof.client_id or None, tenant)
            principal = asserted.principal
            if isinstance(principal, AppRegistration) and principal.public_client:
                raise public_with_credential(principal)
            if isinstance(principal, ManagedIdentity) and not client_credentials:
                raise AadstsError(
                    "unauthorized_client", 700016,
                    f"Application with identifier '{principal.client_id}' was not found in the "
                    f"directory '{state.directory.tenant_id}'. A managed identity cannot sign "
                    "users in.")
            return principal, asserted.credential
        app = find_client(proof.client_id)
        if proof.secret is None:
            if client_credentials or not app.public_client:
                raise AadstsError(
                    "invalid_client", 7000218,
                    "The request body must contain the following parameter: 'client_assertion' "
                    "or 'client_secret'.", status=401)
            return app, "public"
        if app.public_client:
            raise public_with_credential(app)
        if not any(hmac.compare_digest(proof.secret.encode(), s.get_secret_value().encode())
                   for s in app.client_secrets):
            raise AadstsError(
                "invalid_client", 7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                f"the client secret value, not the client secret ID, for a secret added to app "
                f"'{app.client_id}'.", status=401)
        return app, "secret"

    def user_client(proof: _ClientProof, tenant: str) -> tuple[AppRegistration,
                                                                ClientCredentialKind]:
        principal, credential = authenticate(proof, tenant, client_credentials=False)
        if not isinstance(principal, AppRegistration):  # refused in authenticate already
            raise find_client_error(principal.client_id)
        return principal, credential

    def discovery_v2(request: Request) -> Response:
        try:
            check_tenant(request.path_params["tenant"])
        except AadstsError as exc:
            return _error(exc, state)
        base = f"{state.authority_url}/{state.directory.tenant_id}"
        return JSONResponse({
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": tokens.issuer(2),
            "request_uri_parameter_supported": False,
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "code_challenge_methods_supported": ["S256", "plain"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce",
                                 "preferred_username", "name", "tid", "ver", "at_hash", "c_hash",
                                 "email"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "tenantops.local",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        })

    def discovery_v1(request: Request) -> Response:
        try:
            check_tenant(request.path_params["tenant"])
        except AadstsError as exc:
            return _error(exc, state)
        base = f"{state.authority_url}/{state.directory.tenant_id}"
        return JSONResponse({
            "token_endpoint": f"{base}/oauth2/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/discovery/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token",
                                         "token"],
            "scopes_supported": ["openid"],
            "issuer": tokens.issuer(1),
            "authorization_endpoint": f"{base}/oauth2/authorize",
            "end_session_endpoint": f"{base}/oauth2/logout",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "tenantops.local",
        })

    def jwks(request: Request) -> Response:
        state.count("jwks")
        tenant = request.path_params.get("tenant", "common")
        try:
            check_tenant(tenant)
        except AadstsError as exc:
            return _error(exc, state)
        v2 = request.url.path.endswith("/v2.0/keys")
        template = f"{state.authority_url}/{{tenantid}}"
        issuer = f"{template}/v2.0" if v2 else f"{template}/"
        keys = [k.public_jwk(issuer) for k in state.keys.published()]
        return JSONResponse({"keys": keys}, headers={"Cache-Control": "max-age=86400, private"})

    def _token_response(body: dict[str, Any]) -> JSONResponse:
        return JSONResponse(body, headers={"Cache-Control": "no-store, no-cache",
                                           "Pragma": "no-cache"})

    async def token_v2(request: Request) -> Response:
        state.count("token:v2")
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        try:
            tenant = request.path_params["tenant"]
            check_tenant(tenant)
            grant_type = form.get("grant_type", "")
            proof = _client_proof(request, form)
            if grant_type == "client_credentials":
                principal, credential = authenticate(proof, tenant, client_credentials=True)
                app, resource = tokens.resolve_scope(form.get("scope", ""))
                issued = tokens.app_token(app, resource, principal, credential)
                state.count("tokens:client-credentials")
                state.count(f"tokens:client-credentials:{credential}")
                return _token_response({"token_type": "Bearer", "expires_in": issued.expires_in,
                                        "ext_expires_in": issued.expires_in,
                                        "access_token": issued.access_token})
            if grant_type == "authorization_code":
                client, credential = user_client(proof, tenant)
                code = state.redeem_code(form.get("code", ""))
                if code is None or code.client_id != client.client_id:
                    raise AadstsError("invalid_grant", 70008,
                                      "The provided authorization code or refresh token has "
                                      "expired due to inactivity or was already redeemed.")
                if form.get("redirect_uri") != code.redirect_uri:
                    raise AadstsError("invalid_grant", 500112,
                                      "The reply address does not match the reply address "
                                      "provided when requesting the authorization code.")
                _check_pkce(code, form.get("code_verifier"))
                return _user_tokens(client, credential, code.username, code.scope, code.nonce,
                                    form.get("client_info") == "1")
            if grant_type == "refresh_token":
                client, credential = user_client(proof, tenant)
                grant = state.redeem_refresh_token(form.get("refresh_token", ""))
                if grant is None or grant.client_id != client.client_id:
                    raise AadstsError("invalid_grant", 70008,
                                      "The provided authorization code or refresh token has "
                                      "expired due to inactivity or was already redeemed.")
                scope = form.get("scope") or grant.scope
                return _user_tokens(client, credential, grant.username, scope, None,
                                    form.get("client_info") == "1")
            raise AadstsError("unsupported_grant_type", 70003,
                              f"The app requested an unsupported grant type '{grant_type}'.")
        except AadstsError as exc:
            return _error(exc, state)

    def _user_tokens(client: AppRegistration, credential: ClientCredentialKind, username: str,
                     scope: str, nonce: str | None, client_info: bool) -> Response:
        user = state.directory.user_by_username(username)
        if user is None:
            raise AadstsError("invalid_grant", 50034,
                              f"The user account {username} does not exist in the directory.")
        resource_scopes = [s for s in scope.split() if s not in _OIDC_SCOPES]
        if resource_scopes:
            app, resource = tokens.resolve_scope(" ".join(resource_scopes))
        else:
            graph = state.directory.app_by_name("Microsoft Graph")
            assert graph is not None
            app = graph
            resource = "https://graph.microsoft.com"
        issued = tokens.user_token(app, resource, user, client, credential)
        state.count("tokens:user")
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join([*resource_scopes, *(s for s in scope.split() if s in _OIDC_SCOPES)]),
            "expires_in": issued.expires_in,
            "ext_expires_in": issued.expires_in,
            "access_token": issued.access_token,
        }
        if "openid" in scope.split():
            body["id_token"] = tokens.id_token(client, user, nonce)
        if "offline_access" in scope.split():
            body["refresh_token"] = state.issue_refresh_token(
                RefreshGrant(client.client_id, scope, user.username,
                             time.time() + REFRESH_LIFETIME))
        if client_info:
            info = json.dumps({"uid": user.object_id, "utid": state.directory.tenant_id})
            body["client_info"] = base64.urlsafe_b64encode(info.encode()).rstrip(b"=").decode()
        return _token_response(body)

    async def token_v1(request: Request) -> Response:
        state.count("token:v1")
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        try:
            tenant = request.path_params["tenant"]
            check_tenant(tenant)
            grant_type = form.get("grant_type", "")
            if grant_type != "client_credentials":
                raise AadstsError("unsupported_grant_type", 70003,
                                  f"The app requested an unsupported grant type '{grant_type}'.")
            principal, credential = authenticate(_client_proof(request, form), tenant,
                                                 client_credentials=True)
            resource = form.get("resource", "")
            if not resource:
                raise AadstsError("invalid_request", 50001,
                                  "The request body must contain the following parameter: "
                                  "'resource'.")
            app = tokens.resolve_resource(resource)
            issued = tokens.app_token(app, resource, principal, credential)
            state.count("tokens:client-credentials")
            state.count(f"tokens:client-credentials:{credential}")
            return _token_response({
                "token_type": "Bearer", "expires_in": str(issued.expires_in),
                "ext_expires_in": str(issued.expires_in), "expires_on": str(issued.expires_on),
                "not_before": str(issued.not_before), "resource": resource,
                "access_token": issued.access_token})
        except AadstsError as exc:
            return _error(exc, state)

    async def authorize(request: Request) -> Response:
        state.count("authorize")
        params = dict(request.query_params)
        form: dict[str, str] = {}
        if request.method == "POST":
            form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
            params.update({k: v for k, v in form.items() if k not in {"username", "password"}})
        try:
            check_tenant(request.path_params["tenant"])
            client = find_client(params.get("client_id", ""))
        except AadstsError as exc:
            return HTMLResponse(render_error(str(exc)), status_code=400)
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri_allowed(client, redirect_uri):
            return HTMLResponse(render_error(
                f"AADSTS50011: The redirect URI '{redirect_uri}' specified in the request does "
                f"not match the redirect URIs configured for the application "
                f"'{client.client_id}'. Make sure the redirect URI sent in the request matches "
                "one added to your application in the Azure portal."), status_code=400)

        def back(**values: str) -> Response:
            if params.get("state"):
                values["state"] = params["state"]
            if params.get("response_mode") == "form_post":
                return HTMLResponse(render_form_post(redirect_uri, list(values.items())))
            sep = "&" if "?" in redirect_uri else "?"
            return RedirectResponse(f"{redirect_uri}{sep}{urlencode(values)}", status_code=302)

        if params.get("response_type") != "code":
            return back(error="unsupported_response_type",
                        error_description="AADSTS700054: only response_type=code is supported "
                        "by the emulator.")
        challenge = params.get("code_challenge")
        if client.public_client and not challenge:
            return back(error="invalid_request",
                        error_description="AADSTS9002325: Proof Key for Code Exchange is "
                        "required for cross-origin authorization code redemption.")
        if challenge and params.get("code_challenge_method", "plain") not in {"S256", "plain"}:
            return back(error="invalid_request",
                        error_description="AADSTS501491: Invalid code_challenge_method.")
        scope = params.get("scope", "")
        if not scope and params.get("resource"):
            scope = f"{params['resource']}/.default openid"
        try:
            resource_scopes = [s for s in scope.split() if s not in _OIDC_SCOPES]
            if resource_scopes:
                tokens.resolve_scope(" ".join(resource_scopes))
        except AadstsError as exc:
            return back(error=exc.error, error_description=str(exc))

        hidden = [(k, v) for k, v in params.items() if k not in {"username", "password"}]
        users = [u.username for u in state.directory.users]
        if request.method == "GET":
            return HTMLResponse(render_signin(
                tenant_id=state.directory.tenant_id, client_name=client.name,
                action=request.url.path,
                hidden=hidden, users=users, username=params.get("login_hint", "")))
        username = form.get("username", "")
        user = state.directory.user_by_username(username)
        if user is None or not hmac.compare_digest(
            form.get("password", "").encode(), user.password.get_secret_value().encode()
        ):
            return HTMLResponse(render_signin(
                tenant_id=state.directory.tenant_id, client_name=client.name,
                action=request.url.path,
                hidden=hidden, users=users, username=username,
                error="AADSTS50126: Error validating credentials due to invalid username or "
                "password."), status_code=200)
        try:
            if resource_scopes:
                app, _ = tokens.resolve_scope(" ".join(resource_scopes))
                tokens.roles_for(user.username, client.client_id, app, "User")
        except AadstsError as exc:
            return back(error=exc.error, error_description=str(exc))
        code = state.issue_code(AuthorizationCode(
            client.client_id, redirect_uri, scope, user.username, challenge,
            params.get("code_challenge_method", "plain") if challenge else None,
            params.get("nonce"), time.time() + CODE_LIFETIME))
        return back(code=code)

    return [
        Route("/{tenant:str}/v2.0/.well-known/openid-configuration", discovery_v2),
        Route("/{tenant:str}/.well-known/openid-configuration", discovery_v1),
        Route("/{tenant:str}/discovery/v2.0/keys", jwks),
        Route("/{tenant:str}/discovery/keys", jwks),
        Route("/{tenant:str}/oauth2/v2.0/token", token_v2, methods=["POST"]),
        Route("/{tenant:str}/oauth2/token", token_v1, methods=["POST"]),
        Route("/{tenant:str}/oauth2/v2.0/authorize", authorize, methods=["GET", "POST"]),
        Route("/{tenant:str}/oauth2/authorize", authorize, methods=["GET", "POST"]),
    ]


def _check_pkce(code: AuthorizationCode, verifier: str | None) -> None:
    if code.code_challenge is None:
        return
    if not verifier:
        raise AadstsError("invalid_grant", 50148,
                          "The code_verifier does not match the code_challenge supplied in the "
                          "authorization request for PKCE.")
    if code.code_challenge_method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    else:
        computed = verifier
    if not hmac.compare_digest(computed, code.code_challenge):
        raise AadstsError("invalid_grant", 50148,
                          "The code_verifier does not match the code_challenge supplied in the "
                          "authorization request for PKCE.")
