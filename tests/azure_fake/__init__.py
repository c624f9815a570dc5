"""In-process fakes of the Azure services tenantops drives, as azure-core transports.

One fake per resource type, each keeping the service's documented semantics and citing the
shared reference (provisioning-apis.md) for every behaviour in its docstring:

- `FakeAppService` (app_service.py): sites, hostname bindings, custom-hostname analysis,
  managed certificates with the 202 + delayed thumbprint, Key Vault certificates.
- `FakeAzureDns` (dns.py): zones, CNAME/TXT/A record sets with ETags (If-Match,
  If-None-Match, 412).
- `FakeAzureSql` (sql.py) and `FakePostgresFlexible` (postgres.py): databases as
  long-running operations.
- `FakeKeyVault` (key_vault.py): secrets, with challenge authentication and soft delete.
- `FakeAuthorization` (authorization.py): role assignments, enforced on every operation
  (403 ``AuthorizationFailed`` / ``ForbiddenByRbac``), and the caller's permissions at a scope.
- `FakeEntra` (tokens.py): signs the tests' bearer tokens; every fake checks audience, tenant
  and expiry as ARM or Key Vault does.
- `contract` (contract.py): each operation's contract from the REST API specifications,
  checked on every request and answer.

`FakeAzure` builds them on one virtual clock, lets App Service see what the DNS fake serves,
and routes a request to the fake that owns it (`FakeAzure.transport`), so a provider or a
preflight with several SDK clients can take one transport.
"""

from __future__ import annotations

from typing import Any

from azure.core.rest._http_response_impl import HttpResponseImpl

from tests.azure_fake._transport import (
    ArmError,
    FakeClock,
    FakeResponse,
    FakeTransport,
    Fault,
    RecordedRequest,
    arm_error,
    build_response,
    parse_request,
)
from tests.azure_fake.app_service import FakeAppService, FakeSite
from tests.azure_fake.authorization import ROLE_ACTIONS, ROLES, FakeAuthorization
from tests.azure_fake.contract import CONTRACTS, Contract, ContractError
from tests.azure_fake.dns import FakeAzureDns
from tests.azure_fake.key_vault import FakeKeyVault
from tests.azure_fake.postgres import FakePostgresFlexible
from tests.azure_fake.sql import FakeAzureSql
from tests.azure_fake.tokens import PRINCIPAL, TENANT, EntraCredential, FakeEntra

__all__ = [
    "CONTRACTS",
    "PRINCIPAL",
    "ROLES",
    "ROLE_ACTIONS",
    "SUBSCRIPTION",
    "TENANT",
    "ArmError",
    "Contract",
    "ContractError",
    "EntraCredential",
    "FakeAppService",
    "FakeAuthorization",
    "FakeAzure",
    "FakeAzureDns",
    "FakeAzureSql",
    "FakeClock",
    "FakeEntra",
    "FakeKeyVault",
    "FakePostgresFlexible",
    "FakeResponse",
    "FakeSite",
    "FakeTransport",
    "Fault",
    "RecordedRequest",
    "arm_error",
]

SUBSCRIPTION = "6f2b1c9e-3d4a-4e5f-8a7b-9c0d1e2f3a4b"


class FakeAzure(FakeTransport):
    """Every fake, on one clock; as a transport, it hands each request to the fake that owns
    the host and path (faults injected here apply before any fake sees the request)."""

    def __init__(self, *, issuance_seconds: float = 300.0, dns_lag_reads: int = 0,
                 speedup: float | None = None, purge_protection: bool = False) -> None:
        super().__init__(api_version=None, clock=FakeClock(speedup))
        clock = self.clock
        self.dns = FakeAzureDns(clock=clock, lag_reads=dns_lag_reads)
        self.app_service = FakeAppService(clock=clock, resolver=self.dns.answers,
                                          issuance_seconds=issuance_seconds)
        self.sql = FakeAzureSql(clock=clock, subscription=SUBSCRIPTION)
        self.postgres = FakePostgresFlexible(clock=clock, subscription=SUBSCRIPTION)
        self.key_vault = FakeKeyVault(clock=clock, subscription=SUBSCRIPTION,
                                      purge_protection=purge_protection)
        self.authorization = FakeAuthorization(clock=clock)
        self.fakes: list[FakeTransport] = [self.app_service, self.dns, self.sql, self.postgres,
                                           self.key_vault, self.authorization]
        for fake in self.fakes:
            fake.entra = self.entra
            fake.permissions = self.authorization.check

    @property
    def violations(self) -> list[str]:
        """Requests the specification would refuse, from every fake."""
        return [v for fake in self.fakes for v in fake.violations]

    @violations.setter
    def violations(self, _value: list[str]) -> None:
        return None

    def credential(self, **kwargs: object) -> EntraCredential:
        """A token credential for the tests' identity (see `FakeEntra.credential`)."""
        return self.entra.credential(**kwargs)  # type: ignore[arg-type]

    def send(self, request: Any, **kwargs: Any) -> HttpResponseImpl:
        incoming = parse_request(request)
        host = request.url.split("/")[2].lower()
        with self._lock:
            for fault in self.faults:
                if fault.count > 0 and fault.matches(incoming.method, incoming.path):
                    fault.count -= 1
                    self.requests.append(RecordedRequest(
                        incoming.method, incoming.path, incoming.query, {}, incoming.body, True))
                    return build_response(request, fault.response())
        for fake in self.fakes:
            if fake.host == host and fake.handles(incoming.method, incoming.path):
                response = fake.send(request, **kwargs)
                with self._lock:
                    self.requests.append(fake.requests[-1])
                return response
        return build_response(request, arm_error(
            404, "NotRoutedInFake", f"no fake handles {incoming.method} {host}{incoming.path}"))
