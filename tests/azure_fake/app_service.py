"""Fake of App Service (``Microsoft.Web``, api-version 2025-05-01): sites, hostname bindings,
the custom-hostname analysis, and certificates (managed and Key Vault).

Semantics kept, with where they come from (shared reference provisioning-apis.md, §2):

- ``GET sites/{app}`` returns ``defaultHostName``, ``customDomainVerificationId`` and
  ``serverFarmId``, which DNS and certificates need (§2 "DNS records").
- ``GET sites/{app}/analyzeCustomHostname?hostName=`` reports the CNAME/TXT/A records App
  Service sees, ``customDomainVerificationTest`` and a conflicting app (§2 "DNS records").
- ``PUT hostNameBindings/{host}`` is synchronous (200) and checks the ``asuid`` TXT record,
  answering 400 ``A TXT record pointing from asuid.{host} to {id} was not found.`` in App
  Service's own error shape (``{"Code", "Message", "Details"}``, as seen in the wild) when it
  is missing (§2 "SDK facts", "Reported failures"). A second PUT converges.
- A hostname bound to another app in the fake is a 409 conflict.
- Binding SSL (``sslState: SniEnabled``) to a hostname that does not exist is 404 "Hostname
  does not exist", and to a thumbprint no certificate has is 400 (§2 "Reported failures").
- ``PUT certificates/{name}`` for a managed certificate (``canonicalName``, ``password: ""``)
  answers **202 Accepted** with ``Location: .../operationresults/...`` although the SDK expects
  200 (§2 "Managed certificate", azure-sdk-for-python#34395). The certificate is then
  readable with ``GET`` but has no ``thumbprint`` until ``issuance_seconds`` of fake time have
  passed; only then does it carry a thumbprint and expiry. A PUT during issuance answers 202
  again and does not restart it. The hostname must be bound first (§2 "Required order").
- A managed certificate is refused when the hostname does not resolve to the app (its CNAME
  must point straight at ``<app>.azurewebsites.net``) or when a CAA record at the name or a
  parent allows issuers but not DigiCert, the managed certificates' issuer. Both are the
  documented requirements (App Service "Add and manage TLS/SSL certificates", "Create a free
  managed certificate"); the service's status (400) and wording are **unconfirmed**. Too many
  orders is 429 with ``Retry-After`` (inject a `Fault`), as ARM throttling.
- What ``GET certificates/{name}`` answers while issuance is pending (the resource without a
  thumbprint) is **unconfirmed**: no recording of ``Microsoft.Web/certificates`` exists.
- ``PUT certificates/{name}`` from Key Vault (``keyVaultId``, ``keyVaultSecretName``) imports
  synchronously (200) with a thumbprint (§2 "Bring your own certificate"). A PUT again imports
  the secret's current version (``key_vault_versions``, which a test raises): a newer version
  gives a new thumbprint, the same one the same (App Service "Import a certificate from Key
  Vault": it syncs the certificate within 24 hours, or when it is imported again; the fake
  does no daily sync).
- ``renew_managed``: what App Service does itself before a managed certificate expires (a new
  thumbprint and expiry on the same resource; "Create a free managed certificate": renewed
  automatically 45 days before expiration). Whether it also rebinds is **unconfirmed**; the
  fake does not.
- ``DELETE certificates/{name}`` while a binding uses its thumbprint is 409 Conflict
  (terraform-azurerm#15595, §2 "Reported failures"); absent is 204.
- ``busy_sites``: while set, any binding change answers 409 "another operation is in
  progress" (pulumi-azure#751, §2 "Reported failures").
- Sites of one subscription share its custom domain verification ID (the `FakeSite`
  default): the ID is the subscription's, the same for every app in it (reported in
  MicrosoftDocs/azure-docs#65663; Microsoft's pages say only "the app's" ID, so
  **unconfirmed**). A hostname moves between two apps by a DELETE on one and a PUT on the
  other (a PUT while the other still holds it is the 409 above), and an SNI binding on either
  may use a certificate of the resource group; App Service requires the certificate in the
  app's webspace (same resource group and region, "Add and manage TLS/SSL certificates"),
  which the fake does not check.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.azure_fake._transport import (
    ArmError,
    FakeClock,
    FakeResponse,
    FakeTransport,
    Incoming,
)

__all__ = ["FakeAppService", "FakeSite"]

API_VERSION = "2025-05-01"
_RG = r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Web"

Resolver = Callable[[str, str], list[str]]
"""(name, record type) -> values the public DNS answers, as App Service would see them."""


def _app_service_error(status: int, code: str, message: str) -> ArmError:
    """App Service's own error body shape, seen in its 400s (rcl-letsencrypt-auto-ssl#25)."""
    return ArmError(status, code, message, body={
        "Code": code, "Message": message, "Target": None,
        "Details": [{"Message": message}, {"Code": code}], "Innererror": None})


@dataclass
class FakeSite:
    name: str
    resource_group: str
    subscription: str
    location: str = "westeurope"
    plan: str = "tenantops-plan"
    verification_id: str = "5F1C0D2E3B4A59687766554433221100FFEEDDCCBBAA99887766554433221100"
    bindings: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.Web/sites/{self.name}")

    @property
    def default_hostname(self) -> str:
        return f"{self.name}.azurewebsites.net"

    @property
    def server_farm_id(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.Web/serverfarms/{self.plan}")


@dataclass
class _Certificate:
    name: str
    resource_group: str
    body: dict[str, Any]
    requested_at: float
    thumbprint: str | None = None
    expires: str | None = None
    imported_version: int = 0


class FakeAppService(FakeTransport):
    """Sites are added with `add_site`; ``resolver`` answers DNS as the public sees it."""

    def __init__(self, *, clock: FakeClock | None = None, resolver: Resolver | None = None,
                 issuance_seconds: float = 300.0) -> None:
        super().__init__(api_version=API_VERSION, clock=clock)
        self.resolver: Resolver = resolver or (lambda _name, _type: [])
        self.issuance_seconds = issuance_seconds
        self.sites: dict[str, FakeSite] = {}
        self.certificates: dict[str, _Certificate] = {}
        # A newer version of a Key Vault certificate's secret, by secret name (0: the first):
        # a PUT of the App Service certificate imports the version current then; until one,
        # the certificate keeps the version it imported ("Import a certificate from Key
        # Vault": App Service syncs within 24 hours, or when the import is done again).
        self.key_vault_versions: dict[str, int] = {}
        self.busy_sites: set[str] = set()
        site = _RG + r"/sites/(?P<site>[^/]+)"
        cert = _RG + r"/certificates/(?P<cert>[^/]+)"
        self.route("GET", site, self._get_site)
        self.route("GET", site + r"/analyzeCustomHostname", self._analyze)
        self.route("GET", site + r"/hostNameBindings/(?P<host>[^/]+)", self._get_binding)
        self.route("PUT", site + r"/hostNameBindings/(?P<host>[^/]+)", self._put_binding)
        self.route("DELETE", site + r"/hostNameBindings/(?P<host>[^/]+)", self._delete_binding)
        self.route("GET", cert, self._get_certificate)
        self.route("PUT", cert, self._put_certificate)
        self.route("DELETE", cert, self._delete_certificate)
        self.route("GET", cert + r"/operationresults/(?P<op>[^/]+)", self._operation_result)

    def add_site(self, site: FakeSite) -> FakeSite:
        self.sites[site.name.lower()] = site
        return site

    # -- sites ----------------------------------------------------------------------------

    def _site(self, match: re.Match[str]) -> FakeSite:
        site = self.sites.get(match["site"].lower())
        if site is None or site.resource_group.lower() != match["rg"].lower():
            raise ArmError(404, "ResourceNotFound",
                           f"The Resource 'Microsoft.Web/sites/{match['site']}' under resource "
                           f"group '{match['rg']}' was not found.")
        return site

    def _get_site(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        site = self._site(match)
        return FakeResponse(200, {
            "id": site.id, "name": site.name, "type": "Microsoft.Web/sites",
            "location": site.location, "kind": "functionapp,linux",
            "properties": {
                "state": "Running", "defaultHostName": site.default_hostname,
                "hostNames": [site.default_hostname, *site.bindings],
                "customDomainVerificationId": site.verification_id,
                "serverFarmId": site.server_farm_id, "httpsOnly": True,
            },
        })

    def _analyze(self, request: Incoming, match: re.Match[str]) -> FakeResponse:
        site = self._site(match)
        host = request.query.get("hostName", "").lower()
        cnames = self.resolver(host, "CNAME")
        txts = self.resolver(f"asuid.{host}", "TXT")
        verified = site.verification_id in txts
        owner = self._owner(host)
        return FakeResponse(200, {
            "id": f"{site.id}/analyzeCustomHostname", "name": host,
            "type": "Microsoft.Web/sites/analyzeCustomHostname",
            "properties": {
                "isHostnameAlreadyVerified": host in site.bindings,
                "customDomainVerificationTest": "Passed" if verified else "Failed",
                "hasConflictOnScaleUnit": owner is not None and owner is not site,
                "hasConflictAcrossSubscription": False,
                "conflictingAppResourceId": owner.id if owner is not None and owner is not site
                else None,
                "cNameRecords": cnames, "txtRecords": txts, "aRecords": [],
                "alternateCNameRecords": [], "alternateTxtRecords": [],
            },
        })

    def _owner(self, host: str) -> FakeSite | None:
        for site in self.sites.values():
            if host in site.bindings:
                return site
        return None

    # -- hostname bindings ----------------------------------------------------------------

    def _binding_body(self, site: FakeSite, host: str) -> dict[str, Any]:
        binding = site.bindings[host]
        return {"id": f"{site.id}/hostNameBindings/{host}", "name": f"{site.name}/{host}",
                "type": "Microsoft.Web/sites/hostNameBindings", "properties": dict(binding)}

    def _get_binding(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        site, host = self._site(match), match["host"].lower()
        if host not in site.bindings:
            raise ArmError(404, "NotFound", f"Cannot find HostName {host}.")
        return FakeResponse(200, self._binding_body(site, host))

    def _check_busy(self, site: FakeSite) -> None:
        if site.name.lower() in self.busy_sites:
            raise _app_service_error(
                409, "Conflict",
                f"Cannot modify this site because another operation is in progress. Details: "
                f"Id: {site.name}, OperationName: Update, CreatedTime: now")

    def _put_binding(self, request: Incoming, match: re.Match[str]) -> FakeResponse:
        site, host = self._site(match), match["host"].lower()
        self._check_busy(site)
        props = dict((request.body or {}).get("properties") or {})
        owner = self._owner(host)
        if owner is not None and owner is not site:
            raise _app_service_error(
                409, "Conflict",
                f"Hostname '{host}' already exists. Ensure that the hostname is not already "
                f"bound to another site ({owner.name}).")
        ssl_state = props.get("sslState") or "Disabled"
        if host not in site.bindings:
            if ssl_state != "Disabled":
                raise _app_service_error(404, "NotFound", f"Hostname {host} does not exist.")
            if site.verification_id not in self.resolver(f"asuid.{host}", "TXT"):
                raise _app_service_error(
                    400, "BadRequest", f"A TXT record pointing from asuid.{host} to "
                    f"{site.verification_id} was not found.")
        thumbprint = props.get("thumbprint")
        if ssl_state != "Disabled" and not any(
                c.thumbprint == thumbprint and c.thumbprint is not None
                for c in self.certificates.values()):
            raise _app_service_error(
                400, "BadRequest",
                f"Certificate with thumbprint '{thumbprint}' was not found in the webspace.")
        record_type = props.get("customHostNameDnsRecordType") or "CName"
        site.bindings[host] = {
            "siteName": site.name, "hostNameType": props.get("hostNameType") or "Verified",
            "customHostNameDnsRecordType": record_type,
            "azureResourceType": props.get("azureResourceType") or "Website",
            "sslState": ssl_state, "thumbprint": thumbprint if ssl_state != "Disabled" else None,
        }
        return FakeResponse(200, self._binding_body(site, host))

    def _delete_binding(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        site, host = self._site(match), match["host"].lower()
        self._check_busy(site)
        if site.bindings.pop(host, None) is None:
            return FakeResponse(204)
        return FakeResponse(200)

    # -- certificates ---------------------------------------------------------------------

    def _certificate_body(self, match: re.Match[str], cert: _Certificate) -> dict[str, Any]:
        props = {k: v for k, v in cert.body.get("properties", {}).items() if k != "password"}
        if cert.thumbprint is not None:
            props.update(thumbprint=cert.thumbprint, expirationDate=cert.expires,
                         subjectName=props.get("canonicalName"),
                         hostNames=[props["canonicalName"]] if props.get("canonicalName")
                         else [], issuer="DigiCert (fake)" if "canonicalName" in props
                         else "Key Vault (fake)")
        return {"id": match.group(0), "name": cert.name, "type": "Microsoft.Web/certificates",
                "location": cert.body.get("location"), "properties": props}

    def _refresh(self, cert: _Certificate) -> None:
        if cert.thumbprint is None and \
                self.clock.now() - cert.requested_at >= self.issuance_seconds:
            self._issue(cert)

    def _issue(self, cert: _Certificate) -> None:
        seed = f"{cert.name}:{cert.requested_at}".encode()
        cert.thumbprint = hashlib.sha1(seed, usedforsecurity=False).hexdigest().upper()
        cert.expires = (dt.datetime(2027, 6, 1, tzinfo=dt.timezone.utc)).isoformat()

    def renew_managed(self, name: str) -> None:
        """What App Service does on its own before a managed certificate expires: the same
        certificate resource gets a new thumbprint and expiry; hostname bindings that name
        the old thumbprint are left as they are ("Create a free managed certificate": renewed
        automatically, continuously, in six-month increments, 45 days before expiration;
        whether the service also rebinds is **unconfirmed**, so the fake does not)."""
        cert = self.certificates[name.lower()]
        seed = f"{cert.name}:{cert.requested_at}:renewed:{cert.thumbprint}".encode()
        cert.thumbprint = hashlib.sha1(seed, usedforsecurity=False).hexdigest().upper()
        cert.expires = (dt.datetime(2027, 12, 1, tzinfo=dt.timezone.utc)).isoformat()

    def _get_certificate(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        cert = self.certificates.get(match["cert"].lower())
        if cert is None or cert.resource_group.lower() != match["rg"].lower():
            raise ArmError(404, "ResourceNotFound",
                           f"The Resource 'Microsoft.Web/certificates/{match['cert']}' under "
                           f"resource group '{match['rg']}' was not found.")
        self._refresh(cert)
        return FakeResponse(200, self._certificate_body(match, cert))

    def _put_certificate(self, request: Incoming, match: re.Match[str]) -> FakeResponse:
        body = request.body or {}
        props = body.get("properties") or {}
        name = match["cert"].lower()
        if not body.get("location") or not props.get("serverFarmId"):
            raise _app_service_error(400, "BadRequest",
                                     "location and properties.serverFarmId are required.")
        existing = self.certificates.get(name)
        if props.get("keyVaultId"):
            cert = existing or _Certificate(match["cert"], match["rg"], body, self.clock.now())
            cert.body = body
            version = self.key_vault_versions.get(str(props.get("keyVaultSecretName")), 0)
            if cert.thumbprint is None or cert.imported_version != version:
                self._issue(cert)  # a PUT imports the secret's current version
                if version:
                    seed = f"{cert.name}:kv:{version}".encode()
                    cert.thumbprint = hashlib.sha1(seed, usedforsecurity=False).hexdigest(
                        ).upper()
                    cert.expires = dt.datetime(2027, 12, 1, tzinfo=dt.timezone.utc
                                               ).isoformat()
                cert.imported_version = version
            self.certificates[name] = cert
            return FakeResponse(200, self._certificate_body(match, cert))
        host = str(props.get("canonicalName") or "").lower()
        if not any(host in site.bindings for site in self.sites.values()):
            raise _app_service_error(
                400, "BadRequest",
                f"Properties.CanonicalName is invalid. Canonical name {host} is not a hostname "
                "bound to any site in the server farm.")
        if existing is None:
            self._check_eligible(host)
            existing = _Certificate(match["cert"], match["rg"], body, self.clock.now())
            self.certificates[name] = existing
        self._refresh(existing)
        if existing.thumbprint is not None:
            return FakeResponse(200, self._certificate_body(match, existing))
        location = (f"https://{self.host}{match.group(0)}/operationresults/"
                    f"{hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:12]}"
                    f"?api-version={API_VERSION}")
        return FakeResponse(202, None, {"Location": location, "Retry-After": "10"})

    def _check_eligible(self, host: str) -> None:
        site = next(s for s in self.sites.values() if host in s.bindings)
        cnames = [c.lower().rstrip(".") for c in self.resolver(host, "CNAME")]
        if site.default_hostname not in cnames:
            raise _app_service_error(
                400, "BadRequest",
                f"Hostname {host} does not resolve to {site.default_hostname}: a managed "
                "certificate needs a CNAME record pointing directly to the app (message "
                "unconfirmed).")
        labels = host.split(".")
        for i in range(len(labels) - 1):
            name = ".".join(labels[i:])
            issuers = [v.split(" ", 2)[2].strip('"').lower()
                       for v in self.resolver(name, "CAA") if " issue " in f" {v} "]
            if issuers:
                if "digicert.com" not in issuers:
                    raise _app_service_error(
                        400, "BadRequest",
                        f"The CAA record at {name} does not allow DigiCert (digicert.com) to "
                        f"issue certificates for {host} (message unconfirmed).")
                return

    def _operation_result(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        cert = self.certificates.get(match["cert"].lower())
        if cert is None:
            raise ArmError(404, "ResourceNotFound", "The operation was not found.")
        self._refresh(cert)
        if cert.thumbprint is None:
            return FakeResponse(202, None, {"Retry-After": "10"})
        return FakeResponse(200, self._certificate_body(match, cert))

    def _delete_certificate(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        name = match["cert"].lower()
        cert = self.certificates.get(name)
        if cert is None:
            return FakeResponse(204)
        for site in self.sites.values():
            for host, binding in site.bindings.items():
                if cert.thumbprint is not None and binding.get("thumbprint") == cert.thumbprint:
                    raise _app_service_error(
                        409, "Conflict",
                        f"Certificate {cert.name} is used by hostname binding {host} of site "
                        f"{site.name}; delete the SSL binding first.")
        del self.certificates[name]
        return FakeResponse(200)
