"""SQLite catalogs queue this process's writers on one lock per file (not the busy handler)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tenantops.catalog import Catalog, StepTemplate, repository
from tenantops.errors import CatalogError

from .test_repository import STEPS, Spec


def test_catalogs_on_one_file_share_a_writer_lock(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    absolute = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    relative = Catalog("sqlite:///catalog.sqlite")
    other = Catalog(f"sqlite:///{tmp_path / 'other.sqlite'}")
    assert absolute._writer is relative._writer
    assert absolute._writer is not other._writer


def test_postgresql_catalog_takes_no_process_lock() -> None:
    catalog = Catalog("postgresql://user@127.0.0.1:1/catalog")
    assert not isinstance(catalog._writer, repository._WriterLock)


def test_many_threads_writing_steps_all_land(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog.migrate()
    steps = [StepTemplate(f"step{i}", "catalog:sqlite", "ensure") for i in range(10)]
    runs = [catalog.open_onboarding(Spec(slug=f"tenant{i}", custom_domain=f"app.t{i}.test"),
                                    requested_by="a", steps=steps).run for i in range(8)]
    errors: list[BaseException] = []

    def work(run_id: str) -> None:
        try:
            for step in steps:
                catalog.step_started(run_id, step.name)
                catalog.step_succeeded(run_id, step.name, {"n": step.name}, {})
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(run.id,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for run in runs:
        recorded = catalog.get_run(run.id)
        assert [(s.status, s.attempts, s.outputs) for s in recorded.steps] == [
            ("succeeded", 1, {"n": s.name}) for s in steps]
    catalog.close()


def test_a_writer_stuck_in_this_process_fails_naming_the_catalog(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog.migrate()
    run = catalog.open_onboarding(Spec(), requested_by="a", steps=STEPS).run
    monkeypatch.setattr(repository, "_SQLITE_BUSY_SECONDS", 0.2)
    holding, release = threading.Event(), threading.Event()

    def stuck_writer() -> None:
        with catalog._writer:
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=stuck_writer)
    thread.start()
    try:
        assert holding.wait(10)
        with pytest.raises(CatalogError, match=r"catalog\.sqlite stayed locked by another "
                                               r"writer of this process for 0\.2 s"):
            catalog.step_started(run.id, "register")
    finally:
        release.set()
        thread.join()
    assert catalog.step_started(run.id, "register") == 1  # nothing was written meanwhile
    catalog.close()
