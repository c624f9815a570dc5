"""``azure-app-service``: custom hostnames and TLS certificates on an App Service or Function
App, through azure-mgmt-web (api-version 2025-05-01).

The order is the service's own (shared reference provisioning-apis.md §2 "Required order"):

1. `HostnameBinding`: if the binding exists, nothing to do. Otherwise
   ``analyze_custom_hostname`` first: a hostname bound to another app is refused with that
   app's ID; while App Service does not yet see the ``asuid`` TXT record with the app's
   ``customDomainVerificationId`` the step is `Pending` (DNS caches), naming what it sees.
   Then ``create_or_update_host_name_binding`` (synchronous, 200).
2. `Certificate`: an App Service managed certificate (``canonicalName``, ``password=""``) or,
   with ``certificate_source = "key-vault"``, one imported from Key Vault. The service
   answers the managed certificate's PUT with **202 Accepted** although the SDK accepts only
   200, so the SDK raises ``HttpResponseError`` with status 202; that is taken as "issuance
   accepted" (as az CLI does, PR #16124) and the step is `Pending`. Each later call reads the
   certificate with ``certificates.get`` and stays `Pending` until it carries a thumbprint
   (issuance takes up to a few minutes); no thread ever waits for it.
3. `SniBinding`: the hostname binding again, with ``sslState = SniEnabled`` and the thumbprint.

Removal goes the other way: SNI off, certificate deleted (refused with a 409 while still
bound, so the order matters), hostname binding deleted. Every step is idempotent: each reads
first and changes only what differs. The site's default hostname, verification ID, plan and
region are read once, on first use (`site`).

**Suspension.** App Service has no per-hostname "disabled" switch: a request is served by the
app the hostname is bound to (App Service routes by ``Host`` on its shared front ends,
"Map an existing custom DNS name"), access restrictions are per app and can filter only on
headers a proxy sets (``X-Forwarded-Host``, "Access restrictions: filter by HTTP header"),
and ``hostNamesDisabled`` disables every public hostname of the app. So a suspended
`HostnameBinding` is *moved* to ``suspended_app_name``, an app on the same plan that answers
every request with a "suspended" page: the binding is deleted from the tenant app and made
on the suspended-page app, which App Service verifies with the same ``asuid`` record (the
custom domain verification ID is the subscription's, the same for all its apps:
MicrosoftDocs/azure-docs#65663), then bound with SNI to the tenant's certificate (a
certificate of the webspace serves any app of the plan). Resuming moves it back. The
certificate, the DNS records and the tenant's data stay. A move interrupted between the
DELETE and the PUT is finished by the next attempt (it binds the hostname where it belongs
and restores SNI from the certificate). Every other operation finds the binding on either
app.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import Enum
from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.mgmt.web import WebSiteManagementClient
from azure.mgmt.web.models import Certificate as ArmCertificate
from azure.mgmt.web.models import CertificateProperties, HostNameBindingProperties
from azure.mgmt.web.models import HostNameBinding as ArmHostNameBinding

from tenantops.config import AppServiceWebHostSettings, Settings
from tenantops.errors import ConfigError, PermanentProviderError, ProviderError
from tenantops.provisioning.providers.azure.calls import azure_call, azure_get
from tenantops.provisioning.providers.azure.connection import AzureConnection
from tenantops.provisioning.providers.azure.errors import arm_error_parts, translate_azure_error
from tenantops.provisioning.providers.base import Outcome, Pending, Ready, Resource
from tenantops.provisioning.providers.webhost import (
    Certificate,
    CertificateRenewal,
    HostnameBinding,
    SiteIdentity,
    SniBinding,
    WebHostProvider,
)

__all__ = ["AzureAppService"]


@dataclass(frozen=True)
class _Site:
    id: str
    default_hostname: str
    verification_id: str
    server_farm_id: str
    location: str


class AzureAppService(WebHostProvider):
    """Hostnames and certificates of the web app ``settings.app_name``."""

    name = "azure-app-service"

    def __init__(self, connection: AzureConnection, settings: AppServiceWebHostSettings) -> None:
        super().__init__()
        if not settings.app_name:
            raise ConfigError(
                "providers.webhost.azure_app_service.app_name is not set; name the App Service "
                "or Function App that serves the tenants")
        if settings.certificate_source == "key-vault" and not settings.key_vault_id:
            raise ConfigError(
                "providers.webhost.azure_app_service.certificate_source is 'key-vault' but "
                "key_vault_id is not set; give the vault's ARM resource ID")
        self.connection = connection
        self.settings = settings
        self.app = settings.app_name
        self.suspended_app = settings.suspended_app_name
        self.resource_group = connection.group(
            settings.resource_group, "providers.webhost.azure_app_service.resource_group")
        self._client: WebSiteManagementClient | None = None
        self._site: _Site | None = None
        self._parking: _Site | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AzureAppService:
        return cls(AzureConnection.from_settings(settings.azure),
                   settings.providers.webhost.azure_app_service)

    @property
    def client(self) -> WebSiteManagementClient:
        if self._client is None:
            self._client = WebSiteManagementClient(
                self.connection.credential, self.connection.subscription_id,
                **self.connection.arm_options())
        return self._client

    # -- the site ---------------------------------------------------------------------------

    def _site_info(self) -> _Site:
        if self._site is None:
            self._site = self._read_site(self.app)
        return self._site

    def _read_site(self, app: str) -> _Site:
        site = azure_call(f"read web app {app} in resource group {self.resource_group}",
                          lambda: self.client.web_apps.get(self.resource_group, app))
        verification = site.custom_domain_verification_id
        if not verification or not site.default_host_name or not site.server_farm_id:
            raise PermanentProviderError(
                f"web app {app} did not report its customDomainVerificationId, "
                "defaultHostName and serverFarmId; is it an App Service or Function App on "
                "a Basic or higher plan?", provider=self.label, action="read")
        return _Site(str(site.id), str(site.default_host_name), str(verification),
                     str(site.server_farm_id), str(site.location))

    def _parking_site(self) -> _Site:
        """The suspended-page app; `PermanentProviderError` when none is configured or it
        is not on the tenant app's plan (its certificates would not serve it)."""
        if self.suspended_app is None:
            raise PermanentProviderError(
                "providers.webhost.azure_app_service.suspended_app_name is not set, so a "
                "suspended tenant's hostname has nowhere to go: deploy an app on the same App "
                "Service plan that answers every request with a suspended page (503), name it "
                "there, then retry the run", provider=self.label, action="ensure")
        if self._parking is None:
            parking = self._read_site(self.suspended_app)
            if parking.server_farm_id.lower() != self._site_info().server_farm_id.lower():
                raise PermanentProviderError(
                    f"the suspended-page app {self.suspended_app} is on plan "
                    f"{parking.server_farm_id}, not on {self._site_info().server_farm_id} with "
                    f"{self.app}; a tenant's certificate serves only apps of its plan. Move it "
                    "to that plan, then retry the run", provider=self.label, action="ensure")
            self._parking = parking
        return self._parking

    def site(self) -> SiteIdentity:
        info = self._site_info()
        return SiteIdentity(info.default_hostname, info.verification_id)

    def certificate_name(self, hostname: str) -> str:
        """The certificate resource's name: ``<hostname>-<app>``, as the portal names them."""
        return f"{hostname}-{self.app}"

    # -- reads ------------------------------------------------------------------------------

    def _binding(self, hostname: str, app: str | None = None) -> ArmHostNameBinding | None:
        app = app or self.app
        return azure_get(
            f"read the hostname binding {hostname} of {app}",
            lambda: self.client.web_apps.get_host_name_binding(
                self.resource_group, app, hostname))

    def _bound(self, hostname: str) -> tuple[str, ArmHostNameBinding] | None:
        """The app ``hostname`` is bound to (the tenant app, or the suspended-page app) and
        its binding."""
        binding = self._binding(hostname)
        if binding is not None:
            return self.app, binding
        if self.suspended_app is not None:
            parked = self._binding(hostname, self.suspended_app)
            if parked is not None:
                return self.suspended_app, parked
        return None

    def _certificate(self, hostname: str) -> ArmCertificate | None:
        name = self.certificate_name(hostname)
        return azure_get(f"read certificate {name}",
                         lambda: self.client.certificates.get(self.resource_group, name))

    # -- ensure -----------------------------------------------------------------------------

    def _ensure(self, resource: Resource) -> Outcome:
        if isinstance(resource, HostnameBinding):
            return self._place_hostname(resource)
        if isinstance(resource, Certificate):
            return self._issue_certificate(resource.hostname)
        if isinstance(resource, CertificateRenewal):
            return self._follow_certificate(resource)
        assert isinstance(resource, SniBinding)
        return self._bind_certificate(resource.hostname, resource.thumbprint)

    def _place_hostname(self, resource: HostnameBinding) -> Outcome:
        """Bind the hostname to the tenant app, or (suspended) to the suspended-page app,
        moving it from the other one when it is there."""
        hostname = resource.hostname
        target = self._parking_site() if resource.suspended else self._site_info()
        app = self.suspended_app if resource.suspended else self.app
        if app is None:
            raise PermanentProviderError("no app to bind to", provider=self.label)
        outputs = {"hostname": hostname, "app": app, "suspended": resource.suspended}
        bound = self._bound(hostname)
        if bound is not None and bound[0] == app:
            return Ready(outputs, changed=False)
        if bound is not None:
            moved_from = bound[0]
            azure_call(f"remove hostname {hostname} from {moved_from} (moving it to {app})",
                       lambda: self.client.web_apps.delete_host_name_binding(
                           self.resource_group, moved_from, hostname))
        outcome = self._bind_hostname(hostname, app, target, ours={
            self._site_info().id.lower(), target.id.lower()})
        if isinstance(outcome, Pending):
            return outcome
        self._restore_sni(hostname, app)
        return Ready(outputs, changed=True)

    def _restore_sni(self, hostname: str, app: str) -> None:
        """Serve ``hostname`` on ``app`` with its certificate, when it has one (a moved
        binding keeps its TLS; a new one gets SNI from the bind_certificate step)."""
        certificate = self._certificate(hostname)
        if certificate is None or not certificate.thumbprint:
            return
        binding = self._binding(hostname, app)
        if binding is None or _text(binding.ssl_state) == "SniEnabled":
            return
        self._put_binding(hostname, binding, "SniEnabled", str(certificate.thumbprint).upper(),
                          app=app)

    def _bind_hostname(self, hostname: str, app: str, site: _Site, *,
                       ours: set[str]) -> Outcome:
        analysis = azure_call(
            f"analyze custom hostname {hostname} for {app}",
            lambda: self.client.web_apps.analyze_custom_hostname(
                self.resource_group, app, host_name=hostname))
        conflict = analysis.conflicting_app_resource_id
        if conflict and str(conflict).lower() not in ours:
            raise PermanentProviderError(
                f"{hostname} is already bound to another app ({conflict}); remove the custom "
                "domain there before binding it to " + app)
        if _text(analysis.custom_domain_verification_test) != "Passed":
            txt = ", ".join(analysis.txt_records or []) or "no TXT record"
            cname = ", ".join(analysis.c_name_records or []) or "no CNAME"
            return Pending(
                f"App Service does not yet see TXT asuid.{hostname} = {site.verification_id} "
                f"(it sees {txt}; {cname}); waiting for DNS caches", self.settings.poll_seconds)
        record_type = "CName" if analysis.c_name_records else "A"
        binding = ArmHostNameBinding(properties=HostNameBindingProperties(
            site_name=app, host_name_type="Verified", azure_resource_type="Website",
            custom_host_name_dns_record_type=record_type))
        azure_call(f"bind hostname {hostname} to {app}",
                   lambda: self.client.web_apps.create_or_update_host_name_binding(
                       self.resource_group, app, hostname, binding))
        return Ready({"hostname": hostname, "app": app}, changed=True)

    def _issue_certificate(self, hostname: str) -> Outcome:
        name = self.certificate_name(hostname)
        existing = self._certificate(hostname)
        if existing is not None and existing.thumbprint:
            return Ready(self._certificate_outputs(hostname, existing), changed=False)
        if existing is not None:
            return self._issuing(hostname)
        site = self._site_info()
        if self.settings.certificate_source == "key-vault":
            properties = CertificateProperties(
                server_farm_id=site.server_farm_id, key_vault_id=self.settings.key_vault_id,
                key_vault_secret_name=self._key_vault_secret_name(hostname))
        else:
            properties = CertificateProperties(server_farm_id=site.server_farm_id,
                                               canonical_name=hostname, password="")
        envelope = ArmCertificate(location=site.location, properties=properties)
        try:
            created = self.client.certificates.create_or_update(
                self.resource_group, name, envelope)
        except HttpResponseError as exc:
            if exc.status_code == 202:
                # The service accepted the order; the SDK expects 200 and raises on 202
                # (azure-sdk-for-python#34395). The thumbprint appears later on GET.
                return self._issuing(hostname, accepted=True)
            raise self._refused(exc, name, hostname, site.default_hostname) from exc
        except Exception as exc:
            raise translate_azure_error(exc, doing=f"create certificate {name}") from exc
        if created.thumbprint:
            return Ready(self._certificate_outputs(hostname, created), changed=True)
        return self._issuing(hostname, accepted=True)

    def _follow_certificate(self, resource: CertificateRenewal) -> Outcome:
        """App Service renews managed certificates itself (before they expire, keeping the
        resource and changing its thumbprint): tenantops reads the one it has now, and the
        next step binds it if the binding still names the old thumbprint. A Key Vault
        certificate still at the old thumbprint is imported again (`_reimport`): a newer
        version in Key Vault becomes the certificate now."""
        current = self._certificate(resource.hostname)
        if (current is not None and current.thumbprint
                and self.settings.certificate_source == "key-vault"
                and str(current.thumbprint).upper() == resource.replace_thumbprint.upper()):
            current = self._reimport(resource.hostname)
        if current is None or not current.thumbprint:
            raise PermanentProviderError(
                f"App Service has no certificate {self.certificate_name(resource.hostname)} "
                f"for {resource.hostname}; run the tenant's onboarding (or an update) to "
                "issue one", resource=resource.key)
        outputs = self._certificate_outputs(resource.hostname, current)
        renewed = outputs["thumbprint"] != resource.replace_thumbprint.upper()
        return Ready({**outputs, "previous_thumbprint": resource.replace_thumbprint},
                     changed=renewed,
                     message=None if renewed else (
                         "Key Vault holds no newer version of this certificate (imported again, "
                         "the same); the binding is left as it is"
                         if self.settings.certificate_source == "key-vault" else
                         "App Service has not renewed this managed certificate yet (it does so "
                         "itself before expiry); the binding is left as it is"))

    def _reimport(self, hostname: str) -> ArmCertificate:
        """Import the Key Vault certificate again, so App Service takes the secret's current
        version now rather than at its next daily sync; the same version keeps the same
        thumbprint."""
        site = self._site_info()
        name = self.certificate_name(hostname)
        envelope = ArmCertificate(location=site.location, properties=CertificateProperties(
            server_farm_id=site.server_farm_id, key_vault_id=self.settings.key_vault_id,
            key_vault_secret_name=self._key_vault_secret_name(hostname)))
        return azure_call(f"import certificate {name} again from Key Vault",
                          lambda: self.client.certificates.create_or_update(
                              self.resource_group, name, envelope))

    def _refused(self, exc: HttpResponseError, name: str, hostname: str,
                 default_hostname: str) -> ProviderError:
        """The order's refusal as a step error; the managed certificate's documented
        requirements (a CNAME straight to the app, CAA allowing DigiCert) get their fix."""
        error = translate_azure_error(exc, doing=f"create certificate {name}")
        if exc.status_code != 400 or self.settings.certificate_source != "managed":
            return error
        _, said = arm_error_parts(exc)
        if "caa" in said.lower():
            return PermanentProviderError(
                f"{error}. App Service managed certificates are issued by DigiCert: add a CAA "
                f'record 0 issue "digicert.com" beside the existing ones for {hostname} (or '
                "remove the CAA records that exclude it), then retry the run")
        if "resolve" in said.lower() or "cname" in said.lower():
            return PermanentProviderError(
                f"{error}. A managed certificate needs {hostname} to resolve to the app: a "
                f"CNAME record pointing directly at {default_hostname} (no proxy or Traffic "
                "Manager in between); fix the record, wait for DNS, then retry the run")
        return error

    def _issuing(self, hostname: str, *, accepted: bool = False) -> Pending:
        what = "accepted the order for" if accepted else "is still issuing"
        return Pending(f"App Service {what} the certificate for {hostname}; no thumbprint yet",
                       self.settings.poll_seconds)

    def _key_vault_secret_name(self, hostname: str) -> str:
        return self.settings.key_vault_secret_name.replace("{hostname}",
                                                           hostname.replace(".", "-"))

    def _certificate_outputs(self, hostname: str, cert: ArmCertificate) -> dict[str, Any]:
        expires = cert.expiration_date
        if isinstance(expires, dt.datetime):
            expires_at = expires.isoformat()
        else:
            expires_at = str(expires) if expires else ""
        return {"hostname": hostname, "thumbprint": str(cert.thumbprint).upper(),
                "expires_at": expires_at, "certificate": self.certificate_name(hostname),
                "source": self.settings.certificate_source}

    def _bind_certificate(self, hostname: str, thumbprint: str) -> Outcome:
        bound = self._bound(hostname)
        if bound is None:
            raise PermanentProviderError(
                f"hostname {hostname} is not bound to {self.app}, so no certificate can be "
                "bound to it; run the bind_hostname step first")
        app, binding = bound
        outputs = {"hostname": hostname, "thumbprint": thumbprint, "ssl_state": "SniEnabled"}
        if _text(binding.ssl_state) == "SniEnabled" and \
                str(binding.thumbprint or "").upper() == thumbprint.upper():
            return Ready(outputs, changed=False)
        self._put_binding(hostname, binding, "SniEnabled", thumbprint, app=app)
        return Ready(outputs, changed=True)

    def _put_binding(self, hostname: str, current: ArmHostNameBinding, ssl_state: str,
                     thumbprint: str | None, *, app: str | None = None) -> None:
        app = app or self.app
        update = ArmHostNameBinding(properties=HostNameBindingProperties(
            site_name=app, host_name_type=_text(current.host_name_type) or "Verified",
            azure_resource_type=_text(current.azure_resource_type) or "Website",
            custom_host_name_dns_record_type=_text(current.custom_host_name_dns_record_type)
            or "CName",
            ssl_state=ssl_state, thumbprint=thumbprint))
        azure_call(f"set SSL state {ssl_state} on hostname {hostname} of {app}",
                   lambda: self.client.web_apps.create_or_update_host_name_binding(
                       self.resource_group, app, hostname, update))

    # -- remove -----------------------------------------------------------------------------

    def _remove(self, resource: Resource) -> Outcome:
        if isinstance(resource, CertificateRenewal):
            return Ready({"hostname": resource.hostname}, changed=False)  # nothing to undo
        if isinstance(resource, SniBinding):
            bound = self._bound(resource.hostname)
            if bound is None or _text(bound[1].ssl_state) in ("Disabled", ""):
                return Ready({"hostname": resource.hostname}, changed=False)
            self._put_binding(resource.hostname, bound[1], "Disabled", None, app=bound[0])
            return Ready({"hostname": resource.hostname}, changed=True)
        if isinstance(resource, Certificate):
            name = self.certificate_name(resource.hostname)
            if self._certificate(resource.hostname) is None:
                return Ready({"hostname": resource.hostname}, changed=False)
            azure_call(f"delete certificate {name} (unbind it first if it is still bound)",
                       lambda: self.client.certificates.delete(self.resource_group, name))
            return Ready({"hostname": resource.hostname}, changed=True)
        assert isinstance(resource, HostnameBinding)
        bound = self._bound(resource.hostname)
        if bound is None:
            return Ready({"hostname": resource.hostname}, changed=False)
        app = bound[0]
        azure_call(f"remove hostname {resource.hostname} from {app}",
                   lambda: self.client.web_apps.delete_host_name_binding(
                       self.resource_group, app, resource.hostname))
        return Ready({"hostname": resource.hostname}, changed=True)

    # -- observe ----------------------------------------------------------------------------

    def _observe(self, resource: Resource) -> dict[str, Any] | None:
        if isinstance(resource, Certificate | CertificateRenewal):
            cert = self._certificate(resource.hostname)
            if cert is None:
                return None
            return {"hostname": resource.hostname,
                    "thumbprint": str(cert.thumbprint).upper() if cert.thumbprint else None}
        assert isinstance(resource, (HostnameBinding, SniBinding))
        bound = self._bound(resource.hostname)
        if bound is None:
            return None
        app, binding = bound
        if isinstance(resource, SniBinding):
            if _text(binding.ssl_state) != "SniEnabled":
                return None
            return {"hostname": resource.hostname,
                    "thumbprint": str(binding.thumbprint or "").upper()}
        return {"hostname": resource.hostname, "tenant": resource.tenant,
                "suspended": app != self.app}


def _text(value: object) -> str:
    """An SDK enum member or string as its wire value ("SniEnabled", not "SslState.SNI...")."""
    if isinstance(value, Enum):
        return str(value.value)
    return "" if value is None else str(value)
