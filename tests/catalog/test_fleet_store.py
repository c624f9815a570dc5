"""The fleet store on SQLite and PostgreSQL: a sole fleet run (the certificate schedule's) is
registered once however many workers ask at the same instant."""

from __future__ import annotations

import threading

from tenantops.catalog import Catalog, FleetRun, NewFleet


def renewal(by: str) -> NewFleet:
    return NewFleet(operation="renew-certificates", selection={"all": True}, options={},
                    canary=0, concurrency=4, batch_size=None, max_failures=0,
                    max_failure_percent=None, requested_by=by)


def test_workers_asking_at_once_register_one_sole_fleet_run(catalog_url: str,
                                                           catalog: Catalog) -> None:
    workers = [Catalog(catalog_url) for _ in range(6)]
    barrier = threading.Barrier(len(workers))
    outcomes: list[FleetRun | BaseException | None] = []
    lock = threading.Lock()

    def ask(worker: Catalog, name: str) -> None:
        barrier.wait()
        try:
            outcome: FleetRun | BaseException | None = worker.fleets.create_sole(
                renewal(name), [])
        except BaseException as exc:  # collected and asserted below
            outcome = exc
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=ask, args=(w, f"worker-{i}"))
               for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for worker in workers:
        worker.close()

    created = [o for o in outcomes if isinstance(o, FleetRun)]
    assert len(created) == 1, outcomes
    assert outcomes.count(None) == len(workers) - 1
    assert [f.id for f in catalog.fleets.active_for("renew-certificates")] == [created[0].id]
    # Once it is no longer running or stopped, the next one may start.
    catalog.fleets.cancel(created[0].id, by="test")
    assert catalog.fleets.create_sole(renewal("later"), []) is not None
    # Another operation is not held back by a renewal in flight.
    other = renewal("other")
    assert catalog.fleets.create_sole(NewFleet(**{**other.__dict__, "operation": "migrate"}),
                                      []) is not None
