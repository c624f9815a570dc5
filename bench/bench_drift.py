"""A fleet drift check on the self-hosted servers (PostgreSQL, BIND, Keycloak): how long one
check of every tenant takes with ``drift.concurrency`` tenants at a time, against the same
check one tenant at a time (the baseline) in the same run.

``--tenants`` tenants are onboarded through the engine first (not measured), then the whole
fleet is checked ``--rounds`` times each way; each check observes 9 resources per tenant
through their providers (reads only) and records the report. Printed: the median seconds of a
fleet check each way, per tenant, and the ratio serial / concurrent (goal: at least 1.5 with
concurrency 4 on 2 cores: the observations wait on the servers, not on the CPU).

Run with the test servers up and their TENANTOPS_TEST_* variables exported (the lines
scripts/services/*.sh print, as scripts/test does):
    .venv/bin/python -m bench.bench_drift [--tenants 40] [--concurrency 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from tests.provisioning.providers.selfhosted import (
    scratch_databases,
    selfhosted_providers,
    selfhosted_settings,
)
from tests.provisioning.providers.servers import (
    keycloak_admin,
    keycloak_settings,
    realm_smtp_working,
    unique_slug,
)
from tests.provisioning.providers.test_selfhosted_engine import spec_for

from tenantops.catalog import Catalog
from tenantops.config import Settings
from tenantops.provisioning.drift import DriftChecker
from tenantops.provisioning.engine import Engine


def fleet_seconds(checker: DriftChecker, slugs: list[str], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        results = checker.check_many(slugs, checked_by="bench")
        times.append(time.perf_counter() - began)
        off = [r for r in results if not hasattr(r, "state") or r.state != "in_sync"]
        if off:
            raise SystemExit(f"{len(off)} tenants not in sync: {off[:3]}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    keycloak = keycloak_admin(keycloak_settings())
    with realm_smtp_working(keycloak), tempfile.TemporaryDirectory() as folder, \
            scratch_databases("catalog", "engine") as (catalog_db, engine_db):
        settings = selfhosted_settings(Path(folder), catalog_db=catalog_db,
                                       engine_db=engine_db, dns_server="bind")
        catalog = Catalog.from_settings(settings)
        providers = selfhosted_providers(settings, catalog)
        engine = Engine(settings, catalog=catalog, providers=providers)
        engine.start()
        try:
            slugs = [unique_slug("bdr") for _ in range(args.tenants)]
            runs = [engine.onboard(spec_for(slug), requested_by="bench") for slug in slugs]
            for run in runs:
                done = engine.wait(run.id, timeout=600)
                if done.status != "succeeded":
                    raise SystemExit(f"onboarding {done.tenant_slug} {done.status}: {done.error}")

            def checker(concurrency: int) -> DriftChecker:
                tuned = Settings.model_validate({**settings.model_dump(), "drift": {
                    **settings.drift.model_dump(), "concurrency": concurrency}})
                return DriftChecker(catalog, providers, tuned)

            serial = fleet_seconds(checker(1), slugs, args.rounds)
            concurrent = fleet_seconds(checker(args.concurrency), slugs, args.rounds)
            for slug in slugs:
                engine.wait(engine.offboard(slug, requested_by="bench").id, timeout=600)
        finally:
            engine.stop()
            catalog.close()
            organizations = providers.organization
            close = getattr(organizations, "close", None)
            if close is not None:
                close()
    keycloak.close()
    print(f"fleet drift check of {args.tenants} tenants (9 resources each), median of "
          f"{args.rounds}:")
    print(f"  one at a time (baseline): {serial:.2f} s ({serial / args.tenants * 1000:.0f} ms "
          "per tenant)")
    print(f"  {args.concurrency} at a time:           {concurrent:.2f} s "
          f"({concurrent / args.tenants * 1000:.0f} ms per tenant)")
    print(f"  ratio baseline / concurrent: {serial / concurrent:.2f} (goal: >= 1.5)")


if __name__ == "__main__":
    main()
