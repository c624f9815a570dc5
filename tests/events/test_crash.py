"""A worker killed with SIGKILL between an event's commit and its delivery loses none: the
restarted worker delivers every event of the outbox, each tenant's in order, and a receiver
that drops duplicates by ``webhook-id`` sees each one exactly once."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from tenantops.config import load_settings
from tenantops.provisioning import Engine
from tests.provisioning.conftest import spec_for
from tests.provisioning.test_crash import CONFIG, Worker

from .receiver import Receiver, receiving
from .test_webhooks import SECRET

pytestmark = pytest.mark.integration  # worker subprocesses, killed and restarted

TENANTS = 10
KILLS = 5

EVENTS = """
[events]
poll_seconds = 0.05
retry_initial_seconds = 0.3
retry_max_seconds = 1.0
lease_seconds = 5
timeout_seconds = 2

[[events.webhooks]]
name = "crm"
url = "{url}"
secret = "{secret}"
"""


def test_sigkilled_worker_loses_no_event_between_commit_and_delivery(tmp_path: Path) -> None:
    # Each event is refused twice first, so deliveries trail the runs and kills land while
    # committed events wait for delivery.
    with receiving(Receiver(SECRET, fail_first=2)) as receiver:
        worker = Worker(tmp_path)
        worker.config.write_text(CONFIG.format(data=tmp_path / "data")
                                 + EVENTS.format(url=receiver.url, secret=SECRET))
        settings = load_settings(worker.config)
        worker.start()
        requester = Engine(settings)  # not started: it only records and enqueues runs
        try:
            runs = [requester.onboard(spec_for(f"evt{i:02d}"), requested_by="crash-test")
                    for i in range(TENANTS)]
            chance = random.Random(20261206)
            kills_with_undelivered = 0
            for _ in range(KILLS):
                time.sleep(chance.uniform(0.2, 1.0))
                counts = requester.catalog.events.counts()
                worker.kill()
                kills_with_undelivered += counts["pending"] + counts["unrouted"] > 0
                worker.start()
            deadline = time.monotonic() + 180
            while True:
                finished = all(requester.get_run(r.id).finished for r in runs)
                counts = requester.catalog.events.counts()
                if finished and counts["pending"] == 0 and counts["unrouted"] == 0:
                    break
                assert time.monotonic() < deadline, f"not all delivered: {counts}"
                time.sleep(0.2)
            worker.stop()
            outbox = requester.catalog.events.page(limit=10_000)
            statuses = {requester.get_run(r.id).status for r in runs}
        finally:
            worker.stop()
            requester.stop()

    assert statuses == {"succeeded"}
    assert kills_with_undelivered >= 3, "too few kills landed while events waited"
    assert receiver.rejected == []
    ids = receiver.ids()
    assert len(ids) == len(set(ids))
    assert set(ids) == {e.id for e in outbox}, "an event committed before a kill was lost"
    assert set(receiver.duplicates) <= set(ids), "a re-send carries the same webhook-id"
    for i in range(TENANTS):
        slug = f"evt{i:02d}"
        received = [a.seq for a in receiver.accepted if a.tenant == slug]
        assert received == [e.seq for e in outbox if e.tenant_slug == slug], slug
        assert [a.type for a in receiver.accepted if a.tenant == slug][-1] == (
            "com.tenantops.tenant.onboarded")
