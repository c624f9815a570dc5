"""How ARM's answers become provider errors, the same for every Azure provider: 429 and 5xx
are transient (with Retry-After kept), other 4xx permanent with ARM's code and message."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tenantops.errors import PermanentProviderError, ProviderError, TransientProviderError
from tenantops.provisioning.providers.base import Outcome
from tenantops.provisioning.providers.database import Database
from tenantops.provisioning.providers.dns import DnsRecord
from tenantops.provisioning.providers.secrets import Secret
from tests.azure.conftest import ZONE, AzureWorld
from tests.azure_fake import Fault


@dataclass(frozen=True)
class Call:
    id: str
    run: Callable[[AzureWorld], Outcome]


CALLS = [
    Call("app-service", lambda w: w.webhost.remove(__import__(
        "tenantops.provisioning.providers.webhost", fromlist=["Certificate"]).Certificate(
            f"acme.{ZONE}"))),
    Call("dns", lambda w: w.dns.ensure(DnsRecord(f"acme.{ZONE}", "TXT", "x"))),
    Call("sql", lambda w: w.sql.ensure(Database("tenant_acme", "acme_app", "s"))),
    Call("postgres", lambda w: w.postgres.ensure(Database("tenant_acme", "acme_app", "s"))),
    Call("key-vault", lambda w: w.secrets.ensure(Secret("acme-database-password"))),
]


@pytest.mark.parametrize("call", CALLS, ids=[c.id for c in CALLS])
def test_throttling_is_transient_and_keeps_retry_after(world: AzureWorld, call: Call) -> None:
    world.fake.inject(Fault(429, count=1, retry_after=17))

    with pytest.raises(TransientProviderError) as caught:
        call.run(world)

    assert caught.value.retry_after == 17
    assert caught.value.status_code == 429
    assert "Azure answered 429 (TooManyRequests: The request is being throttled.); retry " \
           "after 17 s" in str(caught.value)


@pytest.mark.parametrize("status", [500, 502, 503])
@pytest.mark.parametrize("call", CALLS, ids=[c.id for c in CALLS])
def test_server_errors_are_transient(world: AzureWorld, call: Call, status: int) -> None:
    world.fake.inject(Fault(status, count=1))

    with pytest.raises(TransientProviderError, match=f"Azure answered {status}"):
        call.run(world)


@pytest.mark.parametrize(("status", "code", "advice"), [
    (400, "InvalidParameter", "check the values named above"),
    (401, "InvalidAuthenticationToken", "check [azure] source/identity"),
    (403, "AuthorizationFailed", "run 'tenantops azure check'"),
])
@pytest.mark.parametrize("call", CALLS, ids=[c.id for c in CALLS])
def test_client_errors_are_permanent_with_the_arm_code_and_message(
    world: AzureWorld, call: Call, status: int, code: str, advice: str
) -> None:
    world.fake.inject(Fault(status, count=1, code=code, message=f"ARM says {code}."))

    with pytest.raises(PermanentProviderError) as caught:
        call.run(world)

    message = str(caught.value)
    assert f"Azure answered {status} ({code}: ARM says {code}.)" in message
    assert advice in message
    assert caught.value.status_code == status
    assert caught.value.provider.startswith(("webhost:", "dns:", "database:", "secrets:"))


def test_a_429_storm_is_retried_by_the_caller_until_it_passes(world: AzureWorld) -> None:
    fault = world.fake.inject(Fault(429, count=5, retry_after=30))
    waits: list[float | None] = []
    while True:
        try:
            world.dns.ensure(DnsRecord(f"acme.{ZONE}", "TXT", "x"))
            break
        except TransientProviderError as exc:
            waits.append(exc.retry_after)
            world.fake.clock.advance(exc.retry_after or 0)
    assert waits == [30] * 5
    assert fault.count == 0


def test_the_sdk_does_not_sleep_through_throttling_itself(world: AzureWorld) -> None:
    world.fake.inject(Fault(429, count=1, retry_after=600))

    with pytest.raises(ProviderError):
        world.dns.ensure(DnsRecord(f"acme.{ZONE}", "TXT", "x"))

    assert world.fake.clock.slept == []


def test_a_missing_server_is_permanent_with_the_arm_code(world: AzureWorld) -> None:
    world.fake.sql.servers.clear()

    with pytest.raises(PermanentProviderError) as caught:
        world.sql.ensure(Database("tenant_acme", "acme_app", "s"))

    assert "Azure answered 404 (ResourceNotFound: The Resource 'Microsoft.Sql/servers/" \
           "tenantops-sql'" in str(caught.value)
    assert "check the names and resource group" in str(caught.value)
