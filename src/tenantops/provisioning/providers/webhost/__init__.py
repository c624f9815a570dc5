"""Web host providers: serve a tenant's custom hostname with its own TLS certificate.

The order is App Service's: bind the hostname (the host checks the ``asuid`` TXT record),
issue a certificate for it (pending until issued), then bind the certificate with SNI.
Removal goes the other way; deleting a certificate that is still bound is refused.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from tenantops.provisioning.providers.base import Provider, Resource

__all__ = [
    "Certificate",
    "CertificateRenewal",
    "HostnameBinding",
    "SiteIdentity",
    "SniBinding",
    "WebHostProvider",
]


@dataclass(frozen=True)
class SiteIdentity:
    """What DNS must point at: the host's default hostname (CNAME target) and the domain
    verification ID (``asuid`` TXT value)."""

    default_hostname: str
    verification_id: str


@dataclass(frozen=True)
class HostnameBinding(Resource):
    """Custom hostname ``hostname`` bound to the site, for tenant ``tenant``.

    ``suspended``: the hostname answers with a "suspended" page instead of the tenant's app
    (local edge: 503; App Service: the binding moves to the suspended-page app); the binding,
    its certificate and DNS stay."""

    hostname: str
    tenant: str
    suspended: bool = False

    @property
    def key(self) -> str:
        return f"hostname:{self.hostname}"


@dataclass(frozen=True)
class Certificate(Resource):
    """A server certificate for ``hostname`` (managed: issued and renewed by the host)."""

    hostname: str

    @property
    def key(self) -> str:
        return f"certificate:{self.hostname}"


@dataclass(frozen=True)
class SniBinding(Resource):
    """``hostname`` served with the certificate ``thumbprint`` (SHA-1, hex) via SNI."""

    hostname: str
    thumbprint: str

    @property
    def key(self) -> str:
        return f"sni:{self.hostname}"


@dataclass(frozen=True)
class CertificateRenewal(Resource):
    """The certificate of ``hostname`` renewed if it still is the one with thumbprint
    ``replace_thumbprint`` (so a replayed step does not renew twice). Where the host renews
    its certificates itself (App Service managed certificates), ``ensure`` reports the one
    the host has now; the next step binds whichever it is (docs/fleet.md)."""

    hostname: str
    replace_thumbprint: str

    @property
    def key(self) -> str:
        return f"certificate:{self.hostname}"


class WebHostProvider(Provider):
    kind = "webhost"
    resource_types: ClassVar[tuple[type[Resource], ...]] = (
        HostnameBinding, Certificate, SniBinding, CertificateRenewal)

    @abstractmethod
    def site(self) -> SiteIdentity:
        """The site's default hostname and verification ID (may read them on first use)."""
