"""``keycloak`` organizations: Keycloak 26 Organizations through the admin REST API.

tenantops signs in as a confidential client's service account (client credentials), never as
an administrator; the account needs the realm-management roles manage-realm, view-realm,
manage-users, view-users and query-users (docs/providers.md shows the setup).

A `TenantOrganization` becomes an organization whose alias is the tenant's slug, with the
name, domains and redirect URL asked for, and an attribute (``tenant_attribute``, by default
``tenantops-tenant``) holding the slug. The attribute is how tenantops finds its
organizations again (Keycloak searches organizations by name, domain and attribute, not by
alias) and how it tells them apart from organizations someone else made: tenantops never
converges or deletes an organization that lacks it.

- Existing organization: converged with one PUT when it differs, never duplicated. A 409 on
  create (a concurrent create, or a name or alias already in use) is resolved by looking the
  organization up; only someone else's organization is an error, and the error names it.
- A domain already owned by another organization is a permanent error naming that
  organization (Keycloak answers 400 for it, not 409); it is checked before anything is
  created, so a refused onboarding leaves nothing half-made.
- `OrganizationInvitation`: ``invite-user`` (form-encoded), unless the person is already a
  member or has a pending invitation. Keycloak sends the email itself, so the realm needs SMTP
  (a 500 "Failed to send invite email" is permanent when the realm has no SMTP server,
  transient when its server did not take the message).
- ``enabled`` is the organization's own ``enabled`` flag: a suspended tenant's organization
  is disabled, and its members cannot sign in through it (nothing is deleted).
- What the tenant's plan gives it (``[plans.<name>.organization] attributes``) is kept as
  organization attributes ``tenantops-plan-<key>`` (one value each), which tokens and the
  tenant app can read; a plan change replaces them, and attributes others set are kept.
- Removal deletes the organization (Keycloak also deletes its managed members); an
  invitation's removal deletes the pending invitation and ends the person's membership
  (a previous administrator removed after a new one is invited).
- Adoption (``tenantops import``): an organization made before tenantops has the tenant's
  alias but not the attribute. `observe` still reports it (found by alias, ``managed``
  false, with its ID), and once the tenant is recorded with that ID
  (`TenantOrganization.organization_id`) the next run that converges it (a reconcile) adds
  the attribute: from then on it is tenantops' like any other. Without the recorded ID,
  an organization lacking the attribute is never converged nor deleted.

HTTP 429, 5xx (other than the SMTP failure), timeouts and connection errors are transient.
The client secret and tokens are never logged or put in a message.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from tenantops.config import KeycloakOrganizationSettings
from tenantops.errors import PermanentProviderError, ProviderError, TransientProviderError
from tenantops.provisioning.providers.base import (
    Outcome,
    Ready,
    Resource,
    retry_after_seconds,
)
from tenantops.provisioning.providers.organization import (
    OrganizationInvitation,
    OrganizationProvider,
    TenantOrganization,
)
from tenantops.provisioning.spec import normalize_hostname

__all__ = ["KeycloakOrganizations"]

_ROLES_NEEDED = "manage-realm, view-realm, manage-users, view-users and query-users"
_PAGE = 100
_ALIAS = re.compile(r"[a-z][a-z0-9-]{0,62}")
PLAN_ATTRIBUTE = "tenantops-plan-"


class KeycloakOrganizations(OrganizationProvider):
    """Organizations in realm ``settings.realm`` of the Keycloak at ``settings.url``.

    ``transport`` replaces the network (tests pass an `httpx.MockTransport`).
    """

    name = "keycloak"

    def __init__(
        self,
        settings: KeycloakOrganizationSettings,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self._transport = transport
        self._client: httpx.Client | None = None
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()

    @property
    def _realm_label(self) -> str:
        return f"realm {self.settings.realm!r} at {self.settings.url}"

    def close(self) -> None:
        """Close the HTTP connections (the provider opens them again when next used)."""
        with self._lock:
            client, self._client, self._token = self._client, None, None
        if client is not None:
            client.close()

    def _ensure(self, resource: Resource) -> Outcome:
        if isinstance(resource, OrganizationInvitation):
            return self._ensure_invitation(resource)
        assert isinstance(resource, TenantOrganization)
        wanted = self._representation(resource)
        existing = self._locate(resource)
        if existing is None:
            self._refuse_taken_domains(resource, own_id=None)
            response = self._request("POST", "/organizations", json=wanted)
            if response.status_code == 201:
                location = response.headers.get("Location", "").rstrip("/")
                organization_id = location.rsplit("/", 1)[-1] if location else str(
                    (self._find(resource.alias) or {}).get("id", ""))
                return Ready(self._outputs(resource, organization_id), changed=True)
            if response.status_code == 400:
                raise self._bad_request(resource, response)
            if response.status_code != 409:
                raise self._unexpected(response, f"create organization {resource.alias!r}")
            existing = self._resolve_conflict(resource)
        organization_id = str(existing["id"])
        if self._differs(existing, wanted):
            self._refuse_taken_domains(resource, own_id=organization_id)
            merged = dict(existing)
            merged.update(wanted)
            # Attributes of others are kept; those of a previous plan go.
            attributes = {k: v for k, v in (existing.get("attributes") or {}).items()
                          if not k.startswith(PLAN_ATTRIBUTE)}
            attributes.update(wanted["attributes"])
            merged["attributes"] = attributes
            response = self._request("PUT", f"/organizations/{organization_id}", json=merged)
            if response.status_code == 400:
                raise self._bad_request(resource, response)
            if response.status_code == 409:
                raise self._name_taken(resource)
            if response.status_code != 204:
                raise self._unexpected(response, f"update organization {resource.alias!r}")
            return Ready(self._outputs(resource, organization_id), changed=True)
        return Ready(self._outputs(resource, organization_id), changed=False)

    def _remove(self, resource: Resource) -> Outcome:
        if isinstance(resource, OrganizationInvitation):
            return self._remove_invitation(resource)
        assert isinstance(resource, TenantOrganization)
        existing = self._locate(resource)
        if existing is None:
            return Ready({"alias": resource.alias}, changed=False)
        response = self._request("DELETE", f"/organizations/{existing['id']}")
        if response.status_code not in (204, 404):
            raise self._unexpected(response, f"delete organization {resource.alias!r}")
        return Ready({"alias": resource.alias, "organization_id": existing["id"]},
                     changed=response.status_code == 204)

    def _observe(self, resource: Resource) -> dict[str, Any] | None:
        assert isinstance(resource, (TenantOrganization, OrganizationInvitation))
        if isinstance(resource, TenantOrganization):
            # Any organization with the alias: one tenantops did not mark shows as such.
            existing = self._locate(resource) or self._find_by_alias(resource.alias)
        else:
            existing = self._find(resource.alias)
        if existing is None:
            return None
        if isinstance(resource, OrganizationInvitation):
            if self._is_member(str(existing["id"]), resource.email):
                return {"alias": resource.alias, "email": resource.email, "status": "member"}
            invitation = self._pending_invitation(str(existing["id"]), resource.email)
            if invitation is None:
                return None
            return {"alias": resource.alias, "email": resource.email, "status": "pending",
                    "invitation_id": invitation.get("id")}
        return {
            "alias": existing.get("alias"),
            "name": existing.get("name"),
            "domains": tuple(sorted(d["name"] for d in existing.get("domains") or [])),
            "redirect_url": existing.get("redirectUrl"),
            "enabled": bool(existing.get("enabled", True)),
            "organization_id": existing.get("id"),
            "managed": self._is_ours(existing, resource.alias),
            "attributes": tuple(sorted(
                (k.removeprefix(PLAN_ATTRIBUTE), str((v or [""])[0]))
                for k, v in (existing.get("attributes") or {}).items()
                if k.startswith(PLAN_ATTRIBUTE))),
        }

    def _locate(self, resource: TenantOrganization) -> dict[str, Any] | None:
        """The tenant's organization: the one tenantops marked for its alias, else the one
        recorded for the tenant (`TenantOrganization.organization_id`, an adopted
        organization not marked yet), which must have the tenant's alias."""
        found = self._find(resource.alias)
        if found is not None or not resource.organization_id:
            return found
        response = self._request(
            "GET", f"/organizations/{quote(resource.organization_id, safe='')}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._unexpected(
                response, f"read organization {resource.organization_id!r} recorded for "
                f"tenant {resource.alias!r}")
        organization = dict(response.json())
        if organization.get("alias") != resource.alias:
            return None  # not the tenant's any more: another organization has that ID
        return organization

    def _representation(self, resource: TenantOrganization) -> dict[str, Any]:
        """What Keycloak should hold; refuses malformed values before any request."""
        if not _ALIAS.fullmatch(resource.alias):
            raise PermanentProviderError(
                f"organization alias {resource.alias!r} must be a tenant slug (a-z, 0-9, '-')"
            )
        domains = []
        for domain in resource.domains:
            try:
                domains.append(normalize_hostname(domain))
            except ValueError as exc:
                raise PermanentProviderError(f"organization domain {domain!r} {exc}") from None
        url = httpx.URL(resource.redirect_url)
        if url.scheme not in ("https", "http") or not url.host:
            raise PermanentProviderError(
                f"redirect URL {resource.redirect_url!r} must be an absolute http(s) URL"
            )
        return {
            "alias": resource.alias,
            "name": resource.name,
            "enabled": resource.enabled,
            "redirectUrl": resource.redirect_url,
            "domains": [{"name": d, "verified": self.settings.verified_domains}
                        for d in sorted(set(domains))],
            "attributes": {self.settings.tenant_attribute: [resource.alias],
                           **{f"{PLAN_ATTRIBUTE}{key}": [value]
                              for key, value in resource.attributes}},
        }

    @staticmethod
    def _differs(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
        for field in ("name", "enabled", "redirectUrl"):
            if existing.get(field) != wanted[field]:
                return True
        have = {(d.get("name"), bool(d.get("verified"))) for d in existing.get("domains") or []}
        if have != {(d["name"], d["verified"]) for d in wanted["domains"]}:
            return True
        attributes = existing.get("attributes") or {}
        stale = [k for k in attributes
                 if k.startswith(PLAN_ATTRIBUTE) and k not in wanted["attributes"]]
        return bool(stale) or any(attributes.get(k) != v
                                  for k, v in wanted["attributes"].items())

    def _outputs(self, resource: TenantOrganization, organization_id: str) -> dict[str, Any]:
        return {"organization_id": organization_id, "alias": resource.alias,
                "domains": sorted(resource.domains), "realm": self.settings.realm}

    def _find(self, alias: str) -> dict[str, Any] | None:
        """The organization tenantops made for ``alias`` (found by its tenant attribute)."""
        response = self._request("GET", "/organizations", params={
            "q": f"{self.settings.tenant_attribute}:{alias}", "exact": "true",
            "briefRepresentation": "false", "first": "0", "max": "10",
        })
        if response.status_code == 404:
            raise self._organizations_unavailable(response)
        if response.status_code != 200:
            raise self._unexpected(response, f"look up organization {alias!r}")
        for organization in response.json():
            if organization.get("alias") == alias:
                return dict(organization)
        return None

    def _find_by_alias(self, alias: str) -> dict[str, Any] | None:
        """Any organization with ``alias``, tenantops' or not (pages through them all)."""
        first = 0
        while True:
            response = self._request("GET", "/organizations", params={
                "first": str(first), "max": str(_PAGE), "briefRepresentation": "false",
            })
            if response.status_code != 200:
                raise self._unexpected(response, f"look up organization alias {alias!r}")
            page = response.json()
            for organization in page:
                if organization.get("alias") == alias:
                    return dict(organization)
            if len(page) < _PAGE:
                return None
            first += _PAGE

    def _search_exact(self, text: str) -> list[dict[str, Any]]:
        """Organizations whose name or domain is exactly ``text``."""
        response = self._request("GET", "/organizations", params={
            "search": text, "exact": "true", "briefRepresentation": "false",
        })
        if response.status_code != 200:
            raise self._unexpected(response, f"search organizations for {text!r}")
        return [dict(o) for o in response.json()]

    def _refuse_taken_domains(self, resource: TenantOrganization, own_id: str | None) -> None:
        for domain in resource.domains:
            for owner in self._search_exact(domain):
                names = {d.get("name") for d in owner.get("domains") or []}
                if domain in names and owner.get("id") != own_id and not self._is_ours(
                        owner, resource.alias):
                    raise self._domain_taken(resource, domain, owner)

    def _is_ours(self, organization: dict[str, Any], alias: str) -> bool:
        """Whether tenantops made ``organization`` for the tenant ``alias``."""
        attributes = organization.get("attributes") or {}
        return bool(organization.get("alias") == alias
                    and attributes.get(self.settings.tenant_attribute) == [alias])

    def _domain_taken(
        self, resource: TenantOrganization, domain: str, owner: dict[str, Any]
    ) -> PermanentProviderError:
        return PermanentProviderError(
            f"domain {domain} is already owned by organization {owner.get('name')!r} (alias "
            f"{owner.get('alias')!r}, id {owner.get('id')}) in {self._realm_label}; a domain "
            f"belongs to one organization only. Remove it from that organization or give "
            f"tenant {resource.alias!r} another domain, then retry",
            resource=resource.key,
        )

    def _resolve_conflict(self, resource: TenantOrganization) -> dict[str, Any]:
        """After a 409 on create: adopt our own organization (a concurrent create), or name
        whoever holds the alias or the name."""
        holder = self._find_by_alias(resource.alias)
        if holder is not None:
            if self._is_ours(holder, resource.alias):
                return holder
            raise PermanentProviderError(
                f"alias {resource.alias!r} is already used by organization "
                f"{holder.get('name')!r} (id {holder.get('id')}) in {self._realm_label}, which "
                f"tenantops did not make for this tenant (no {self.settings.tenant_attribute}="
                f"{resource.alias} attribute). Delete or rename that organization, or add the "
                "attribute to let tenantops manage it, then retry",
                resource=resource.key,
            )
        if not self._holders_of_name(resource.name):
            raise TransientProviderError(
                f"Keycloak reported a conflict creating organization {resource.alias!r} but no "
                "organization holds its alias or name yet (a concurrent create not yet "
                "committed); will retry",
                resource=resource.key, status_code=409,
            )
        raise self._name_taken(resource)

    def _holders_of_name(self, name: str) -> list[dict[str, Any]]:
        return [o for o in self._search_exact(name) if o.get("name") == name]

    def _name_taken(self, resource: TenantOrganization) -> PermanentProviderError:
        others = self._holders_of_name(resource.name)
        holder = (f"organization alias {others[0].get('alias')!r} (id {others[0].get('id')})"
                  if others else "another organization")
        return PermanentProviderError(
            f"organization name {resource.name!r} is already used by {holder} in "
            f"{self._realm_label}; names are unique in a realm. Give tenant "
            f"{resource.alias!r} another display name, or rename that organization",
            resource=resource.key,
        )

    def _bad_request(
        self, resource: TenantOrganization, response: httpx.Response
    ) -> PermanentProviderError:
        message = _error_message(response)
        if "already linked to organization" in message:
            for domain in resource.domains:
                if domain in message:
                    owners = [o for o in self._search_exact(domain)
                              if domain in {d.get("name") for d in o.get("domains") or []}]
                    if owners and self._is_ours(owners[0], resource.alias):
                        raise TransientProviderError(
                            f"organization {resource.alias!r} was created concurrently; "
                            "will retry and converge it", resource=resource.key,
                        )
                    if owners:
                        return self._domain_taken(resource, domain, owners[0])
        return PermanentProviderError(
            f"Keycloak refused organization {resource.alias!r} in {self._realm_label}: "
            f"{message or response.status_code}",
            resource=resource.key, status_code=response.status_code,
        )

    def _ensure_invitation(self, resource: OrganizationInvitation) -> Outcome:
        organization = self._organization_for(resource)
        organization_id = str(organization["id"])
        outputs: dict[str, Any] = {"email": resource.email, "organization_id": organization_id}
        if self._is_member(organization_id, resource.email):
            return Ready({**outputs, "status": "member"}, changed=False)
        pending = self._pending_invitation(organization_id, resource.email)
        if pending is not None:
            return Ready({**outputs, "status": "pending", "invitation_id": pending.get("id")},
                         changed=False)
        response = self._request(
            "POST", f"/organizations/{organization_id}/members/invite-user",
            data={"email": resource.email},
        )
        if response.status_code == 409:  # invited or joined meanwhile
            return Ready({**outputs, "status": "pending"}, changed=False)
        if response.status_code == 400:
            raise PermanentProviderError(
                f"Keycloak refused to invite {resource.email!r} to organization "
                f"{resource.alias!r}: {_error_message(response) or 400}",
                resource=resource.key, status_code=400,
            )
        if response.status_code == 500 and "send invite email" in _error_message(response):
            raise self._email_failure(resource)
        if response.status_code != 204:
            raise self._unexpected(response, f"invite {resource.email!r}")
        pending = self._pending_invitation(organization_id, resource.email)
        invitation_id = pending.get("id") if pending else None
        return Ready({**outputs, "status": "pending", "invitation_id": invitation_id},
                     changed=True)

    def _email_failure(self, resource: OrganizationInvitation) -> ProviderError:
        """Keycloak's "Failed to send invite email" covers two causes: no SMTP server in the
        realm (permanent until someone configures it) and an SMTP server that did not take the
        message (worth retrying). The realm's settings tell them apart."""
        response = self._request("GET", "")
        smtp = (response.json().get("smtpServer") or {}) if response.status_code == 200 else {}
        if not smtp.get("host"):
            return PermanentProviderError(
                f"Keycloak could not send the invitation email to {resource.email!r}: "
                f"{self._realm_label} has no SMTP server. Configure it (Realm settings → "
                "Email, or smtpServer in the realm representation), then retry",
                resource=resource.key, status_code=500,
            )
        return TransientProviderError(
            f"Keycloak could not send the invitation email to {resource.email!r} through its "
            f"SMTP server {smtp.get('host')}:{smtp.get('port', '25')}; will retry. If this "
            "persists, check that server and the realm's email settings",
            resource=resource.key, status_code=500,
        )

    def _remove_invitation(self, resource: OrganizationInvitation) -> Outcome:
        organization = self._find(resource.alias)
        if organization is None:
            return Ready({"email": resource.email}, changed=False)
        organization_id = str(organization["id"])
        changed = False
        pending = self._pending_invitation(organization_id, resource.email)
        if pending is not None:
            response = self._request(
                "DELETE", f"/organizations/{organization_id}/invitations/{pending['id']}"
            )
            if response.status_code not in (204, 404):
                raise self._unexpected(response, f"delete the invitation of {resource.email!r}")
            changed = response.status_code == 204
        member = self._member(organization_id, resource.email)
        if member is not None:
            # DELETE /organizations/{id}/members/{member-id} (Keycloak 26 admin REST API,
            # "Organizations"): the user leaves the organization; the account stays.
            response = self._request(
                "DELETE", f"/organizations/{organization_id}/members/{member['id']}")
            if response.status_code not in (204, 404):
                raise self._unexpected(response, f"remove member {resource.email!r}")
            changed = changed or response.status_code == 204
        return Ready({"email": resource.email}, changed=changed)

    def _organization_for(self, resource: OrganizationInvitation) -> dict[str, Any]:
        organization = self._find(resource.alias)
        if organization is None:
            raise PermanentProviderError(
                f"organization {resource.alias!r} does not exist in {self._realm_label}, so "
                f"{resource.email!r} cannot be invited to it; run the organization step first",
                resource=resource.key,
            )
        return organization

    def _is_member(self, organization_id: str, email: str) -> bool:
        return self._member(organization_id, email) is not None

    def _member(self, organization_id: str, email: str) -> dict[str, Any] | None:
        response = self._request("GET", f"/organizations/{organization_id}/members",
                                 params={"search": email, "exact": "true"})
        if response.status_code != 200:
            raise self._unexpected(response, "list organization members")
        for member in response.json():
            if str(member.get("email", "")).lower() == email.lower():
                return dict(member)
        return None

    def _pending_invitation(self, organization_id: str, email: str) -> dict[str, Any] | None:
        response = self._request("GET", f"/organizations/{organization_id}/invitations",
                                 params={"email": email, "status": "PENDING"})
        if response.status_code == 404:  # Keycloak < 26.7.2 lists no invitations
            return None
        if response.status_code != 200:
            raise self._unexpected(response, "list organization invitations")
        for invitation in response.json():
            if (str(invitation.get("email", "")).lower() == email.lower()
                    and invitation.get("status", "PENDING") == "PENDING"):
                return dict(invitation)
        return None

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                verify: Any = True
                if self.settings.ca_bundle is not None:
                    verify = str(self.settings.ca_bundle)
                self._client = httpx.Client(
                    base_url=self.settings.url.rstrip("/"),
                    timeout=self.settings.timeout_seconds,
                    verify=verify,
                    transport=self._transport,
                    follow_redirects=False,
                )
            return self._client

    def _client_secret(self) -> str:
        settings = self.settings
        if settings.client_secret is not None:
            return settings.client_secret.get_secret_value()
        if settings.client_secret_file is not None:
            try:
                secret = Path(settings.client_secret_file).read_text().strip()
            except OSError as exc:
                raise PermanentProviderError(
                    "cannot read the Keycloak client secret from "
                    f"providers.organization.keycloak.client_secret_file "
                    f"({settings.client_secret_file}): {exc.strerror}"
                ) from None
            if secret:
                return secret
        raise PermanentProviderError(
            "no secret for Keycloak client "
            f"{settings.client_id!r}: set providers.organization.keycloak.client_secret or "
            "client_secret_file (the client's Credentials tab in the admin console)"
        )

    def _access_token(self, *, renew: bool = False) -> str:
        now = time.monotonic()
        with self._lock:
            if self._token is not None and not renew and self._token[1] > now:
                return self._token[0]
        realm = quote(self.settings.realm, safe="")
        response = self._send("POST", f"/realms/{realm}/protocol/openid-connect/token", data={
            "grant_type": "client_credentials",
            "client_id": self.settings.client_id,
            "client_secret": self._client_secret(),
        })
        if response.status_code == 200:
            body = response.json()
            lifetime = float(body.get("expires_in", 60))
            with self._lock:
                self._token = (str(body["access_token"]), now + max(lifetime - 30, lifetime / 2))
            return str(body["access_token"])
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientProviderError(
                f"Keycloak's token endpoint answered {response.status_code}",
                status_code=response.status_code,
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        raise PermanentProviderError(
            f"Keycloak refused the service-account sign-in of client {self.settings.client_id!r} "
            f"in {self._realm_label} ({response.status_code}: {_error_message(response)}); "
            "check the realm, the client ID and secret, and that the client is confidential "
            "with service accounts enabled",
            status_code=response.status_code,
        )

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An admin API call as the service account; renews the token once on 401."""
        realm_path = f"/admin/realms/{quote(self.settings.realm, safe='')}{path}"
        for attempt in range(2):
            token = self._access_token(renew=attempt > 0)
            response = self._send(method, realm_path,
                                  headers={"Authorization": f"Bearer {token}"}, **kwargs)
            if response.status_code != 401:
                break
        if response.status_code == 401:
            raise PermanentProviderError(
                f"Keycloak rejected the service account's token for {method} {path} in "
                f"{self._realm_label}; check the client's token settings",
                status_code=401,
            )
        if response.status_code == 403:
            raise PermanentProviderError(
                f"Keycloak denied {method} {path} to the service account of client "
                f"{self.settings.client_id!r} (403); grant it the realm-management roles "
                f"{_ROLES_NEEDED}",
                status_code=403,
            )
        if response.status_code == 429 or (
            response.status_code >= 500 and "send invite email" not in _error_message(response)
        ):
            raise TransientProviderError(
                f"Keycloak answered {response.status_code} to {method} {path} in "
                f"{self._realm_label}",
                status_code=response.status_code,
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        return response

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http().request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise TransientProviderError(
                f"Keycloak at {self.settings.url} did not answer {method} {path} within "
                f"{self.settings.timeout_seconds:g} s; will retry"
            ) from None
        except httpx.TransportError as exc:
            raise TransientProviderError(
                f"cannot reach Keycloak at {self.settings.url} ({type(exc).__name__}: {exc}); "
                "will retry"
            ) from None

    def _organizations_unavailable(self, response: httpx.Response) -> PermanentProviderError:
        return PermanentProviderError(
            f"Keycloak answered 404 for the organizations of {self._realm_label} "
            f"({_error_message(response)}); check the realm name, and turn on Organizations "
            "for the realm (organizationsEnabled, Realm settings → General)",
            status_code=404,
        )

    def _unexpected(self, response: httpx.Response, doing: str) -> PermanentProviderError:
        return PermanentProviderError(
            f"Keycloak answered {response.status_code} when asked to {doing} in "
            f"{self._realm_label}: {_error_message(response) or 'no details'}",
            status_code=response.status_code,
        )


def _error_message(response: httpx.Response) -> str:
    """Keycloak's own explanation (``errorMessage``, ``error_description``, ``error``)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        for key in ("errorMessage", "error_description", "error"):
            if body.get(key):
                return str(body[key])
    return ""
