"""Drift checks and reconcile runs with the Azure providers against the ARM fake (issue 15
§5): a CNAME another writer pointed elsewhere in Azure DNS, and the hostname binding removed
from the App Service app, are reported resource by resource, then a reconcile restores
both through ARM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tenantops.provisioning.drift import DriftChecker
from tests.azure.conftest import APP, ZONE
from tests.azure.test_onboarding import Stack, start_stack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    yield from start_stack(tmp_path, "azure-sql")


def test_drift_in_azure_dns_and_app_service_is_reported_then_reconciled(stack: Stack) -> None:
    onboarded = stack.wait(stack.onboard("acme"))
    assert onboarded.status == "succeeded"
    checker = DriftChecker.of(stack.engine)
    host = f"acme.{ZONE}"
    assert checker.check("acme").state == "in_sync"

    stack.fake.dns.set_record(ZONE, "acme", "CNAME",
                              {"TTL": 300, "CNAMERecord": {"cname": "elsewhere.example.net"}})
    del stack.site.bindings[host]
    report = checker.check_and_record("acme", checked_by="tests")

    states = {r.step: r for r in report.resources}
    assert report.state == "missing", report.render()
    assert states["bind_hostname"].state == "missing"
    assert states["create_cname_record"].state == "drifted"
    assert [str(d) for d in states["create_cname_record"].differences] == [
        f"value: recorded '{APP}.azurewebsites.net', found 'elsewhere.example.net'"]
    assert states["create_database"].state == "in_sync"

    run = stack.wait(stack.engine.reconcile_tenant("acme", requested_by="tests"))

    assert (run.status, run.error) == ("succeeded", None)
    assert stack.fake.dns.answers(host, "CNAME") == [f"{APP}.azurewebsites.net"]
    assert stack.site.bindings[host]["sslState"] == "SniEnabled"
    assert checker.check("acme").state == "in_sync"
