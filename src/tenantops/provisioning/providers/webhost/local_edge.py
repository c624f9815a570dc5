"""``local-edge``: a web host on this machine that behaves like App Service's custom domains.

Binding a hostname checks the ``asuid.<label>`` TXT record and the CNAME, as App Service
does; certificates come from a local CA (after ``issuance_delay_seconds``, to exercise the
pending path); the TLS edge serves each SNI-bound hostname with its own certificate and
forwards to the sample tenant app. A suspended binding (``HostnameBinding.suspended``) keeps
its certificate, and the edge answers every request on it with ``503`` and a page saying the
tenant is suspended; resuming the binding serves the app again.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tenantops.config import WebHostProviderSettings
from tenantops.errors import PermanentProviderError, TransientProviderError
from tenantops.provisioning.providers.base import (
    EmbeddedService,
    Outcome,
    Pending,
    Ready,
    Resource,
)
from tenantops.provisioning.providers.webhost import (
    Certificate,
    CertificateRenewal,
    HostnameBinding,
    SiteIdentity,
    SniBinding,
    WebHostProvider,
)
from tenantops.provisioning.providers.webhost.edge import TlsEdge
from tenantops.provisioning.providers.webhost.sample_app import SampleApp, TenantLookup
from tenantops.provisioning.providers.webhost.state import Binding, EdgeState

__all__ = ["LocalEdge"]

DnsLookup = Callable[[str, str], list[str]]


class LocalEdge(WebHostProvider):
    name = "local-edge"

    def __init__(
        self,
        settings: WebHostProviderSettings,
        directory: Path,
        *,
        lookup: DnsLookup | None = None,
        tenant_lookup: TenantLookup | None = None,
        serve: bool = True,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.state = EdgeState(directory)
        self._lookup = lookup
        self.app = SampleApp(settings.host, settings.app_port, tenant_lookup) if (
            serve and tenant_lookup is not None) else None
        self.edge = TlsEdge(settings.host, settings.port, self.state, self.app) if serve else None
        self._site: SiteIdentity | None = None

    def services(self) -> list[EmbeddedService]:
        return [s for s in (self.app, self.edge) if s is not None]

    def site(self) -> SiteIdentity:
        if self._site is None:
            self._site = SiteIdentity(
                default_hostname=self.settings.default_hostname,
                verification_id=self.settings.verification_id or self.state.verification_id(),
            )
        return self._site

    def ca_pem(self) -> bytes:
        """The certificate clients must trust to reach the edge."""
        return self.state.ca_pem()

    # -- ensure -------------------------------------------------------------------------

    def _ensure(self, resource: Resource) -> Outcome:
        if isinstance(resource, HostnameBinding):
            return self._bind_hostname(resource)
        if isinstance(resource, Certificate):
            return self._issue_certificate(resource)
        if isinstance(resource, CertificateRenewal):
            return self._renew_certificate(resource)
        assert isinstance(resource, SniBinding)
        return self._bind_certificate(resource)

    def _bind_hostname(self, resource: HostnameBinding) -> Outcome:
        own = self.settings.default_hostname.lower().rstrip(".")
        hostname = resource.hostname.lower().rstrip(".")
        if hostname == own or hostname.endswith(f".{own}") or own.endswith(f".{hostname}"):
            # App Service refuses its own *.azurewebsites.net names as custom domains too:
            # served for a tenant, the site's default hostname (every tenant's CNAME target)
            # would become a CNAME loop and that tenant's certificate the platform's.
            raise PermanentProviderError(
                f"hostname {resource.hostname} is the web host's default hostname {own} or "
                "above or below it; it belongs to the platform and cannot be bound for a tenant"
            )
        existing = self.state.binding(resource.hostname)
        if existing is not None and existing.tenant != resource.tenant:
            raise PermanentProviderError(
                f"hostname {resource.hostname} is already bound for tenant {existing.tenant!r}; "
                "unbind it there first"
            )
        outputs = {"hostname": resource.hostname, "suspended": resource.suspended}
        if existing is not None:
            # Bound already (verified then): only its suspended state may change.
            if existing.suspended == resource.suspended:
                return Ready(outputs, changed=False)
            self.state.write_binding(dataclasses.replace(existing,
                                                         suspended=resource.suspended))
            return Ready(outputs, changed=True)
        if self.settings.verify_domain:
            self._verify_domain(resource.hostname)
        self.state.write_binding(Binding(resource.hostname, resource.tenant, "Disabled", None,
                                         resource.suspended))
        return Ready(outputs, changed=True)

    def _verify_domain(self, hostname: str) -> None:
        if self._lookup is None:
            raise PermanentProviderError(
                "providers.webhost.verify_domain is on but no DNS lookup is available; "
                "turn it off or configure the DNS provider"
            )
        site = self.site()
        label, _, parent = hostname.partition(".")
        asuid = f"asuid.{label}.{parent}"
        txt = self._lookup(asuid, "TXT")
        if site.verification_id not in txt:
            raise PermanentProviderError(
                f"domain verification failed for {hostname}: TXT {asuid} answers {txt or 'nothing'}"
                f", expected the verification ID {site.verification_id}; create that record"
            )
        cname = self._lookup(hostname, "CNAME")
        if site.default_hostname not in cname:
            raise PermanentProviderError(
                f"{hostname} has CNAME {cname or 'none'}, expected {site.default_hostname}; "
                "point the CNAME at the web host"
            )

    def _renew_certificate(self, resource: CertificateRenewal) -> Outcome:
        """A new certificate from the edge's CA when the current one still is
        ``replace_thumbprint``: issued beside it, then moved over it (key, then certificate;
        `state.certificate` ignores the pair while they do not match)."""
        current = self.state.certificate(resource.hostname)
        if current is None:
            raise PermanentProviderError(
                f"hostname {resource.hostname} has no certificate to renew; run the tenant's "
                "onboarding (or an update) to issue one")
        changed = current.thumbprint.upper() == resource.replace_thumbprint.upper()
        if changed:
            cert_path, key_path = self.state.certificate_paths(resource.hostname)
            stem = f".renewing-{resource.hostname}"
            for path in (cert_path.with_name(f"{stem}.pem"), key_path.with_name(f"{stem}.key")):
                path.unlink(missing_ok=True)
            with self.state.locked("ca"):
                self.state.ca.issue([resource.hostname], cert_path.parent, stem=stem)
            os.replace(key_path.with_name(f"{stem}.key"), key_path)
            os.replace(cert_path.with_name(f"{stem}.pem"), cert_path)
            renewed = self.state.certificate(resource.hostname)
            if renewed is None:
                raise TransientProviderError(
                    f"the renewed certificate for {resource.hostname} could not be read back; "
                    "will retry")
            current = renewed
        return Ready({"hostname": resource.hostname, "thumbprint": current.thumbprint,
                      "expires_at": current.expires_at.isoformat(),
                      "previous_thumbprint": resource.replace_thumbprint}, changed=changed)

    def _issue_certificate(self, resource: Certificate) -> Outcome:
        if self.state.binding(resource.hostname) is None:
            raise PermanentProviderError(
                f"hostname {resource.hostname} is not bound to the site, so no certificate can "
                "be issued for it; bind the hostname first"
            )
        issued = self.state.certificate(resource.hostname)
        changed = issued is None
        if issued is None:
            delay = self.settings.issuance_delay_seconds
            if delay > 0:
                remaining = self.state.order_ready_at(resource.hostname, delay) - time.time()
                if remaining > 0:
                    return Pending(f"certificate for {resource.hostname} is being issued",
                                   remaining)
            issued = self.state.issue(resource.hostname)
            self.state.order_path(resource.hostname).unlink(missing_ok=True)
        return Ready(
            {"hostname": resource.hostname, "thumbprint": issued.thumbprint,
             "expires_at": issued.expires_at.isoformat()},
            changed=changed,
        )

    def _bind_certificate(self, resource: SniBinding) -> Outcome:
        binding = self.state.binding(resource.hostname)
        if binding is None:
            raise PermanentProviderError(
                f"hostname {resource.hostname} does not exist on the site; bind it first"
            )
        issued = self.state.certificate(resource.hostname)
        if issued is None or issued.thumbprint != resource.thumbprint:
            have = issued.thumbprint if issued else "none"
            raise PermanentProviderError(
                f"no certificate with thumbprint {resource.thumbprint} for {resource.hostname} "
                f"(the site has {have}); issue the certificate again"
            )
        if binding.ssl_state == "SniEnabled" and binding.thumbprint == resource.thumbprint:
            changed = False
        else:
            self.state.write_binding(dataclasses.replace(
                binding, ssl_state="SniEnabled", thumbprint=resource.thumbprint))
            changed = True
        return Ready({"hostname": resource.hostname, "thumbprint": resource.thumbprint,
                      "ssl_state": "SniEnabled"}, changed=changed)

    # -- remove -------------------------------------------------------------------------

    def _remove(self, resource: Resource) -> Outcome:
        if isinstance(resource, SniBinding):
            binding = self.state.binding(resource.hostname)
            if binding is None or binding.ssl_state == "Disabled":
                return Ready({"hostname": resource.hostname}, changed=False)
            self.state.write_binding(dataclasses.replace(binding, ssl_state="Disabled",
                                                         thumbprint=None))
            return Ready({"hostname": resource.hostname}, changed=True)
        if isinstance(resource, CertificateRenewal):
            return Ready({"hostname": resource.hostname}, changed=False)  # nothing to undo
        if isinstance(resource, Certificate):
            binding = self.state.binding(resource.hostname)
            if binding is not None and binding.ssl_state == "SniEnabled":
                raise PermanentProviderError(
                    f"the certificate for {resource.hostname} is still bound (SNI); unbind it "
                    "before deleting it"
                )
            return Ready({"hostname": resource.hostname},
                         changed=self.state.delete_certificate(resource.hostname))
        assert isinstance(resource, HostnameBinding)
        return Ready({"hostname": resource.hostname},
                     changed=self.state.delete_binding(resource.hostname))

    def _observe(self, resource: Resource) -> dict[str, Any] | None:
        if isinstance(resource, Certificate | CertificateRenewal):
            issued = self.state.certificate(resource.hostname)
            return None if issued is None else {
                "hostname": resource.hostname, "thumbprint": issued.thumbprint}
        assert isinstance(resource, (HostnameBinding, SniBinding))
        binding = self.state.binding(resource.hostname)
        if binding is None:
            return None
        if isinstance(resource, SniBinding):
            if binding.ssl_state != "SniEnabled":
                return None
            return {"hostname": binding.hostname, "thumbprint": binding.thumbprint}
        return {"hostname": binding.hostname, "tenant": binding.tenant,
                "suspended": binding.suspended}
