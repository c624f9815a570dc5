"""`Catalog`: the one source of truth for tenants, their runs and each step's status.

The API, the CLI, the dashboard and the engine all read and write tenants through this
class. It hands out frozen records, never ORM objects, and raises `CatalogError` (or a
precise subclass) instead of SQLAlchemy exceptions. Construction does no I/O; the database
is opened on first use. The schema is created and upgraded by `migrate` (Alembic).

On SQLite every write transaction starts with ``BEGIN IMMEDIATE`` (writers queue behind one
another instead of failing on a lock upgrade) and the file is in WAL mode, so readers never
wait for writers.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from tenantops.catalog.models import (
    ACTIVE_RUN_STATUSES,
    IdempotencyKeyRow,
    RunRow,
    StepRow,
    TenantRow,
    UtcDateTime,
    WorkerRow,
)
from tenantops.errors import (
    CatalogError,
    RunConflictError,
    RunNotFoundError,
    RunStateError,
    TenantConflictError,
    TenantNotFoundError,
)

if TYPE_CHECKING:
    from tenantops.catalog.organizations import OrganizationStore
    from tenantops.config import Settings

__all__ = [
    "Catalog",
    "OpenedRun",
    "Run",
    "RunKind",
    "RunStatus",
    "Step",
    "StepStatus",
    "StepTemplate",
    "Tenant",
    "TenantFields",
    "TenantStatus",
    "catalog_url",
]

TenantStatus = Literal["provisioning", "active", "failed", "offboarding", "offboarded"]
RunKind = Literal["onboard", "offboard"]
RunStatus = Literal["pending", "running", "succeeded", "failed", "cancelled"]
StepStatus = Literal[
    "pending", "running", "waiting", "retrying", "succeeded", "failed", "cancelled"
]
_TERMINAL_RUN = ("succeeded", "failed", "cancelled")
_OPEN_IDENTITY_ATTEMPTS = 5


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _new_id() -> str:
    return uuid.uuid4().hex


def catalog_url(settings: Settings) -> str:
    """The configured catalog URL, or the embedded default under the data directory."""
    if settings.catalog.url:
        return settings.catalog.url
    return f"sqlite:///{(settings.data_dir / 'catalog.sqlite').resolve()}"


class TenantFields(Protocol):
    """What the catalog needs from a tenant spec (`tenantops.provisioning.TenantSpec` fits)."""

    @property
    def slug(self) -> str: ...
    @property
    def display_name(self) -> str: ...
    @property
    def custom_domain(self) -> str: ...
    @property
    def plan(self) -> str: ...
    @property
    def admin_email(self) -> str: ...
    @property
    def tags(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class StepTemplate:
    """A step as planned, before it runs: its name, ``kind:name`` provider and verb."""

    name: str
    provider: str
    action: str


@dataclass(frozen=True)
class Tenant:
    """A tenant as the catalog knows it, with the outputs of the resources made for it."""

    id: str
    slug: str
    display_name: str
    custom_domain: str
    plan: str
    admin_email: str
    tags: dict[str, str]
    status: TenantStatus
    created_at: dt.datetime
    updated_at: dt.datetime
    registered_at: dt.datetime | None
    database_name: str | None
    database_login: str | None
    database_secret: str | None
    dns_records: dict[str, str]
    hostname: str | None
    certificate_thumbprint: str | None
    certificate_expires_at: dt.datetime | None
    organization_id: str | None

    def spec_fields(self) -> dict[str, Any]:
        """The fields a `TenantSpec` is made of, as stored."""
        return {
            "slug": self.slug, "display_name": self.display_name,
            "custom_domain": self.custom_domain, "plan": self.plan,
            "admin_email": self.admin_email, "tags": dict(self.tags),
        }


@dataclass(frozen=True)
class Worker:
    """A started engine, and when it last said it was alive."""

    executor_id: str
    host: str
    pid: int
    started_at: dt.datetime
    last_seen: dt.datetime


@dataclass(frozen=True)
class Step:
    """One step of a run: status as it changes (running included), attempts, timings."""

    run_id: str
    position: int
    name: str
    provider: str
    action: str
    status: StepStatus
    attempts: int
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None
    message: str | None
    outputs: dict[str, Any]


@dataclass(frozen=True)
class Run:
    """One onboarding or offboarding of a tenant, with its steps in plan order."""

    id: str
    tenant_slug: str
    kind: RunKind
    status: RunStatus
    options: dict[str, Any]
    requested_by: str
    workflow_id: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None
    failed_step: str | None
    retries: int
    steps: tuple[Step, ...] = field(default=())

    @property
    def finished(self) -> bool:
        return self.status in _TERMINAL_RUN

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)


@dataclass(frozen=True)
class OpenedRun:
    """The run a request resolved to; ``created`` is False when an existing run was returned."""

    run: Run
    created: bool


def _tenant(row: TenantRow) -> Tenant:
    return Tenant(
        id=row.id, slug=row.slug, display_name=row.display_name,
        custom_domain=row.custom_domain, plan=row.plan, admin_email=row.admin_email,
        tags=dict(row.tags or {}), status=row.status,  # type: ignore[arg-type]
        created_at=row.created_at, updated_at=row.updated_at, registered_at=row.registered_at,
        database_name=row.database_name, database_login=row.database_login,
        database_secret=row.database_secret, dns_records=dict(row.dns_records or {}),
        hostname=row.hostname, certificate_thumbprint=row.certificate_thumbprint,
        certificate_expires_at=row.certificate_expires_at, organization_id=row.organization_id,
    )


def _step(row: StepRow) -> Step:
    return Step(
        run_id=row.run_id, position=row.position, name=row.name, provider=row.provider,
        action=row.action, status=row.status,  # type: ignore[arg-type]
        attempts=row.attempts, started_at=row.started_at, finished_at=row.finished_at,
        error=row.error, message=row.message, outputs=dict(row.outputs or {}),
    )


def _run(row: RunRow, slug: str, steps: Sequence[StepRow]) -> Run:
    return Run(
        id=row.id, tenant_slug=slug, kind=row.kind, status=row.status,  # type: ignore[arg-type]
        options=dict(row.options or {}), requested_by=row.requested_by,
        workflow_id=row.workflow_id, created_at=row.created_at, started_at=row.started_at,
        finished_at=row.finished_at, error=row.error, failed_step=row.failed_step,
        retries=row.retries, steps=tuple(_step(s) for s in sorted(steps, key=lambda s: s.position)),
    )


# Tenant columns a step may set from its outputs; JSON dict columns merge (None deletes).
_OUTPUT_COLUMNS = frozenset({
    "database_name", "database_login", "database_secret", "dns_records", "hostname",
    "certificate_thumbprint", "certificate_expires_at", "organization_id", "registered_at",
})


class Catalog:
    """Tenants, runs and steps in one SQL database (SQLite by default, or PostgreSQL)."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self._url = url
        self._pool_size = pool_size
        self._engine: Engine | None = None
        self._organizations: OrganizationStore | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Catalog:
        return cls(catalog_url(settings))

    @property
    def url(self) -> str:
        """The database URL with any password hidden, for messages and logs."""
        return make_url(self._url).render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return make_url(self._url).get_backend_name()

    @property
    def organizations(self) -> OrganizationStore:
        """Organizations of the ``local`` organization provider, kept in this catalog."""
        if self._organizations is None:
            from tenantops.catalog.organizations import OrganizationStore

            self._organizations = OrganizationStore(self)
        return self._organizations

    # -- connection ---------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> Engine:
        url = make_url(self._url)
        backend = url.get_backend_name()
        if backend == "sqlite":
            if url.database and url.database != ":memory:":
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                url, pool_size=self._pool_size, max_overflow=20,
                connect_args={"timeout": 30, "check_same_thread": False},
            )
            event.listen(engine, "connect", _sqlite_on_connect)
            event.listen(engine, "begin", _sqlite_on_begin)
            return engine
        if backend == "postgresql":
            if url.drivername == "postgresql":
                url = url.set(drivername="postgresql+psycopg")
            return create_engine(
                url, pool_size=self._pool_size, max_overflow=20, pool_pre_ping=True
            )
        raise CatalogError(
            f"catalog URL {self.url} uses {backend!r}; use sqlite:///PATH or "
            "postgresql://USER@HOST/DB in catalog.url"
        )

    def close(self) -> None:
        """Close every pooled connection (the catalog can be used again afterwards)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @contextmanager
    def _session(self, *, write: bool) -> Iterator[Session]:
        bind = self.engine if write else self.engine.execution_options(tenantops_readonly=True)
        try:
            with Session(bind, expire_on_commit=False) as session, session.begin():
                yield session
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise CatalogError(
                f"the catalog at {self.url} failed: {exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0]}; check that the database is reachable and "
                "migrated (tenantops migrations run when a worker starts)"
            ) from exc

    def migrate(self) -> None:
        """Create or upgrade the schema to the latest migration; safe to call concurrently."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option(
            "script_location", str(Path(__file__).with_name("migrations"))
        )
        try:
            with self.engine.connect() as connection:
                if self.dialect == "postgresql":
                    # Serialise concurrent migrators; released when the transaction ends.
                    connection.execute(text("SELECT pg_advisory_xact_lock(74120004)"))
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
        except SQLAlchemyError as exc:
            raise CatalogError(
                f"migrating the catalog at {self.url} failed: {exc}; check the URL and that "
                "the account may create tables"
            ) from exc

    # -- tenants ------------------------------------------------------------------------

    def find_tenant(self, slug: str) -> Tenant | None:
        with self._session(write=False) as s:
            row = s.scalar(select(TenantRow).where(TenantRow.slug == slug))
            return _tenant(row) if row else None

    def get_tenant(self, slug: str) -> Tenant:
        tenant = self.find_tenant(slug)
        if tenant is None:
            raise TenantNotFoundError(slug)
        return tenant

    def tenant_for_hostname(self, hostname: str) -> Tenant | None:
        """The live tenant whose custom domain is ``hostname`` (what a web host serves)."""
        with self._session(write=False) as s:
            row = s.scalar(
                select(TenantRow).where(
                    TenantRow.custom_domain == hostname.lower().rstrip("."),
                    TenantRow.status != "offboarded",
                )
            )
            return _tenant(row) if row else None

    def list_tenants(self, status: TenantStatus | None = None) -> list[Tenant]:
        with self._session(write=False) as s:
            query = select(TenantRow).order_by(TenantRow.slug)
            if status is not None:
                query = query.where(TenantRow.status == status)
            return [_tenant(r) for r in s.scalars(query)]

    def page_tenants(
        self, *, status: TenantStatus | None = None, search: str | None = None,
        limit: int = 50, offset: int = 0,
    ) -> tuple[list[Tenant], int]:
        """One page of tenants, newest first, and how many match in all. ``search`` matches
        part of the slug, display name or custom domain, case-insensitively."""
        with self._session(write=False) as s:
            where = []
            if status is not None:
                where.append(TenantRow.status == status)
            if search:
                pattern = "%" + search.lower().replace("\\", "\\\\").replace(
                    "%", "\\%").replace("_", "\\_") + "%"
                where.append(or_(
                    func.lower(TenantRow.slug).like(pattern, escape="\\"),
                    func.lower(TenantRow.display_name).like(pattern, escape="\\"),
                    func.lower(TenantRow.custom_domain).like(pattern, escape="\\"),
                ))
            total = s.scalar(select(func.count()).select_from(TenantRow).where(*where)) or 0
            rows = s.scalars(
                select(TenantRow).where(*where)
                .order_by(TenantRow.created_at.desc(), TenantRow.id.desc())
                .limit(limit).offset(offset)
            )
            return [_tenant(r) for r in rows], int(total)

    def register_tenant(self, slug: str) -> Tenant:
        """Mark the tenant's configuration record as registered (idempotent)."""
        with self._session(write=True) as s:
            row = self._tenant_row(s, slug)
            if row.registered_at is None:
                row.registered_at = row.updated_at = _now()
            return _tenant(row)

    def set_tenant_status(self, slug: str, status: TenantStatus) -> Tenant:
        with self._session(write=True) as s:
            row = self._tenant_row(s, slug)
            if row.status != status:
                row.status = status
                row.updated_at = _now()
            return _tenant(row)

    def update_tenant_outputs(self, slug: str, updates: Mapping[str, object]) -> Tenant:
        """Record resource outputs on the tenant (see `_OUTPUT_COLUMNS`)."""
        with self._session(write=True) as s:
            row = self._tenant_row(s, slug)
            self._apply_outputs(row, updates)
            return _tenant(row)

    @staticmethod
    def _tenant_row(s: Session, slug: str) -> TenantRow:
        row = s.scalar(select(TenantRow).where(TenantRow.slug == slug))
        if row is None:
            raise TenantNotFoundError(slug)
        return row

    @staticmethod
    def _apply_outputs(row: TenantRow, updates: Mapping[str, object]) -> None:
        for column, value in _output_values(row.dns_records, updates).items():
            setattr(row, column, value)
        if updates:
            row.updated_at = _now()

    # -- runs ---------------------------------------------------------------------------

    def open_onboarding(
        self, spec: TenantFields, *, requested_by: str, steps: Sequence[StepTemplate]
    ) -> OpenedRun:
        """Register the tenant (if new) and its onboarding run, or return the existing run.

        A repeated request with the same spec returns the run already made for it; a request
        whose spec differs from the registered tenant raises `TenantConflictError`; an active
        offboarding raises `RunConflictError`. Safe under concurrent requests (unique indexes
        decide; the loser reads the winner's run).
        """
        return self._open_with_retries(
            lambda s: self._open_onboarding(s, spec, requested_by, steps)
        )

    def open_offboarding(
        self, slug: str, *, requested_by: str, keep_database: bool,
        steps: Sequence[StepTemplate],
    ) -> OpenedRun:
        """Register an offboarding run of ``slug``, or return the one already requested."""
        return self._open_with_retries(
            lambda s: self._open_offboarding(s, slug, requested_by, keep_database, steps)
        )

    def _open_with_retries(self, attempt: Any) -> OpenedRun:
        last: IntegrityError | None = None
        for _ in range(_OPEN_IDENTITY_ATTEMPTS):
            try:
                with self._session(write=True) as s:
                    result = attempt(s)
                    assert isinstance(result, OpenedRun)
                    return result
            except IntegrityError as exc:
                # Another request won a race on a unique index; the next pass sees its rows.
                last = exc
        raise CatalogError(
            f"could not register the run after {_OPEN_IDENTITY_ATTEMPTS} attempts "
            f"(concurrent requests kept conflicting: {last}); try again"
        )

    def _open_onboarding(
        self, s: Session, spec: TenantFields, requested_by: str, steps: Sequence[StepTemplate]
    ) -> OpenedRun:
        now = _now()
        row = s.scalar(select(TenantRow).where(TenantRow.slug == spec.slug))
        self._check_domain_free(s, spec.custom_domain, spec.slug)
        if row is not None and row.status != "offboarded":
            differing = [
                name for name in ("display_name", "custom_domain", "plan", "admin_email", "tags")
                if getattr(row, name) != getattr(spec, name)
            ]
            if differing:
                shown = "; ".join(
                    f"{name}: registered {getattr(row, name)!r}, requested "
                    f"{getattr(spec, name)!r}" for name in differing)
                raise TenantConflictError(
                    f"tenant {spec.slug!r} is already registered with other values ({shown}); "
                    "repeat the original request, or offboard the tenant before onboarding it "
                    "again with new values"
                )
            latest = self._latest_run_row(s, row.id)
            if latest is not None and latest.kind == "onboard":
                return OpenedRun(self._load_run(s, latest, row.slug), created=False)
            if latest is not None:
                raise RunConflictError(
                    f"tenant {spec.slug!r} is being offboarded (run {latest.id} is "
                    f"{latest.status}); finish or retry the offboarding first",
                    slug=spec.slug, active_run_id=latest.id,
                )
        if row is None:
            row = TenantRow(
                id=_new_id(), slug=spec.slug, created_at=now, dns_records={},
            )
            s.add(row)
        row.display_name = spec.display_name
        row.custom_domain = spec.custom_domain
        row.plan = spec.plan
        row.admin_email = spec.admin_email
        row.tags = dict(spec.tags)
        row.status = "provisioning"
        row.updated_at = now
        row.registered_at = None
        s.flush()
        run = self._new_run(s, row, "onboard", requested_by, {}, steps)
        return OpenedRun(self._load_run(s, run, row.slug), created=True)

    @staticmethod
    def _check_domain_free(s: Session, domain: str, slug: str) -> None:
        holder = s.scalar(
            select(TenantRow.slug).where(
                TenantRow.custom_domain == domain,
                TenantRow.slug != slug,
                TenantRow.status != "offboarded",
            )
        )
        if holder is not None:
            raise TenantConflictError(
                f"custom domain {domain!r} already belongs to tenant {holder!r}; "
                "choose another domain or offboard that tenant first"
            )

    def _open_offboarding(
        self, s: Session, slug: str, requested_by: str, keep_database: bool,
        steps: Sequence[StepTemplate],
    ) -> OpenedRun:
        row = self._tenant_row(s, slug)
        latest = self._latest_run_row(s, row.id)
        if latest is not None and latest.kind == "offboard" and (
            latest.status != "cancelled" or row.status == "offboarded"
        ):
            return OpenedRun(self._load_run(s, latest, slug), created=False)
        if latest is not None and latest.status in ACTIVE_RUN_STATUSES:
            raise RunConflictError(
                f"tenant {slug!r} has an onboarding in progress (run {latest.id}, "
                f"{latest.status}); wait for it or cancel it, then offboard",
                slug=slug, active_run_id=latest.id,
            )
        row.status = "offboarding"
        row.updated_at = _now()
        run = self._new_run(s, row, "offboard", requested_by, {"keep_database": keep_database},
                            steps)
        return OpenedRun(self._load_run(s, run, slug), created=True)

    @staticmethod
    def _latest_run_row(s: Session, tenant_id: str) -> RunRow | None:
        return s.scalar(
            select(RunRow).where(RunRow.tenant_id == tenant_id)
            .order_by(RunRow.created_at.desc(), RunRow.id.desc()).limit(1)
        )

    @staticmethod
    def _new_run(
        s: Session, tenant: TenantRow, kind: RunKind, requested_by: str,
        options: dict[str, Any], steps: Sequence[StepTemplate],
    ) -> RunRow:
        run_id = _new_id()
        run = RunRow(
            id=run_id, tenant_id=tenant.id, kind=kind, status="pending", options=options,
            requested_by=requested_by, workflow_id=f"tenantops/{tenant.slug}/{kind}/{run_id}",
            created_at=_now(), retries=0,
        )
        s.add(run)
        s.flush()
        for position, template in enumerate(steps):
            s.add(StepRow(
                run_id=run_id, position=position, name=template.name,
                provider=template.provider, action=template.action, status="pending",
                attempts=0, outputs={},
            ))
        s.flush()
        return run

    @staticmethod
    def _load_run(s: Session, run: RunRow, slug: str) -> Run:
        steps = s.scalars(select(StepRow).where(StepRow.run_id == run.id)).all()
        return _run(run, slug, steps)

    def find_idempotency_key(self, key: str) -> tuple[str, str] | None:
        """The (request fingerprint, run ID) an ``Idempotency-Key`` was first used with."""
        with self._session(write=False) as s:
            row = s.get(IdempotencyKeyRow, key)
            return (row.fingerprint, row.run_id) if row else None

    def remember_idempotency_key(self, key: str, fingerprint: str, run_id: str) -> tuple[str, str]:
        """Record that ``key`` made ``run_id``; if a concurrent request recorded it first,
        return what that one recorded (the caller compares fingerprints)."""
        try:
            with self._session(write=True) as s:
                s.add(IdempotencyKeyRow(key=key, fingerprint=fingerprint, run_id=run_id,
                                        created_at=_now()))
            return fingerprint, run_id
        except IntegrityError:
            found = self.find_idempotency_key(key)
            assert found is not None
            return found

    def get_run(self, run_id: str) -> Run:
        with self._session(write=False) as s:
            return self._get_run(s, run_id)

    def _get_run(self, s: Session, run_id: str) -> Run:
        row = s.get(RunRow, run_id)
        if row is None:
            raise RunNotFoundError(run_id)
        slug = s.scalar(select(TenantRow.slug).where(TenantRow.id == row.tenant_id))
        assert slug is not None
        return self._load_run(s, row, slug)

    def list_runs(
        self, slug: str | None = None, *, status: RunStatus | None = None
    ) -> list[Run]:
        """Runs, oldest first, optionally of one tenant or in one status (steps included)."""
        with self._session(write=False) as s:
            query = (
                select(RunRow, TenantRow.slug).join(TenantRow, TenantRow.id == RunRow.tenant_id)
                .order_by(RunRow.created_at, RunRow.id)
            )
            if slug is not None:
                query = query.where(TenantRow.slug == slug)
            if status is not None:
                query = query.where(RunRow.status == status)
            rows = s.execute(query).all()
            run_ids = [r.id for r, _ in rows]
            steps: dict[str, list[StepRow]] = {rid: [] for rid in run_ids}
            if run_ids:
                for step in s.scalars(select(StepRow).where(StepRow.run_id.in_(run_ids))):
                    steps[step.run_id].append(step)
            return [_run(r, tenant_slug, steps[r.id]) for r, tenant_slug in rows]

    def active_runs(self) -> list[Run]:
        """Runs pending or running: what a worker must make sure has a workflow."""
        return [r for r in self.list_runs() if r.status in ACTIVE_RUN_STATUSES]

    def finish_run(
        self, run_id: str, status: Literal["succeeded", "failed"], *,
        error: str | None = None, failed_step: str | None = None,
    ) -> Run:
        """Close an active run and set the tenant's status to match. A run already closed
        (cancelled meanwhile, say) is left as it is."""
        with self._session(write=True) as s:
            row = s.get(RunRow, run_id)
            if row is None:
                raise RunNotFoundError(run_id)
            if row.status in ACTIVE_RUN_STATUSES:
                row.status = status
                row.finished_at = _now()
                row.error = error
                row.failed_step = failed_step
                if failed_step is not None:
                    s.execute(
                        update(StepRow)
                        .where(StepRow.run_id == run_id, StepRow.name == failed_step,
                               StepRow.status.not_in(("succeeded", "failed")))
                        .values(status="failed", finished_at=row.finished_at, error=error)
                    )
                tenant = s.get(TenantRow, row.tenant_id)
                assert tenant is not None
                if status == "succeeded":
                    tenant.status = "active" if row.kind == "onboard" else "offboarded"
                else:
                    tenant.status = "failed"
                tenant.updated_at = _now()
            return self._get_run(s, run_id)

    def cancel_run(self, run_id: str) -> Run:
        """Mark an active run cancelled (the tenant becomes ``failed``: half made or half
        removed, until the run is retried or the tenant offboarded)."""
        with self._session(write=True) as s:
            row = s.get(RunRow, run_id)
            if row is None:
                raise RunNotFoundError(run_id)
            if row.status not in ACTIVE_RUN_STATUSES:
                raise RunStateError(
                    f"run {run_id} is {row.status}; only a pending or running run can be "
                    "cancelled"
                )
            now = _now()
            row.status = "cancelled"
            row.finished_at = now
            row.error = "cancelled on request"
            s.execute(
                update(StepRow)
                .where(StepRow.run_id == run_id, StepRow.status.in_(
                    ("pending", "waiting", "retrying")))
                .values(status="cancelled")
            )
            tenant = s.get(TenantRow, row.tenant_id)
            assert tenant is not None
            tenant.status = "failed"
            tenant.updated_at = now
            return self._get_run(s, run_id)

    def reopen_run(self, run_id: str) -> Run:
        """Make a failed or cancelled run pending again so it can be retried; its
        succeeded steps stay succeeded. Only the tenant's latest run can be reopened."""
        try:
            with self._session(write=True) as s:
                row = s.get(RunRow, run_id)
                if row is None:
                    raise RunNotFoundError(run_id)
                tenant = s.get(TenantRow, row.tenant_id)
                assert tenant is not None
                if row.status not in ("failed", "cancelled"):
                    raise RunStateError(
                        f"run {run_id} is {row.status}; only a failed or cancelled run can be "
                        "retried"
                    )
                latest = self._latest_run_row(s, tenant.id)
                if latest is not None and latest.id != row.id:
                    raise RunStateError(
                        f"run {run_id} is not the latest run of tenant {tenant.slug!r} "
                        f"({latest.id} is); retry that one instead"
                    )
                row.status = "pending"
                row.finished_at = None
                row.error = None
                row.failed_step = None
                row.retries += 1
                s.execute(
                    update(StepRow)
                    .where(StepRow.run_id == run_id, StepRow.status != "succeeded")
                    .values(status="pending", finished_at=None)
                )
                tenant.status = "provisioning" if row.kind == "onboard" else "offboarding"
                tenant.updated_at = _now()
                s.flush()
                return self._get_run(s, run_id)
        except IntegrityError as exc:
            raise RunConflictError(
                f"another run of this tenant is active, so run {run_id} cannot be retried "
                "now; wait for it or cancel it",
                slug="", active_run_id="",
            ) from exc

    # -- workers: which engines are alive, so a live one can take over a dead one's runs --

    def worker_seen(self, executor_id: str, *, host: str, pid: int) -> None:
        """Record that the worker ``executor_id`` (process ``pid`` on ``host``) is alive."""
        try:
            self._record_worker(executor_id, host, pid)
        except IntegrityError:  # another process registered the same new ID first
            self._record_worker(executor_id, host, pid)

    def _record_worker(self, executor_id: str, host: str, pid: int) -> None:
        now = _now()
        with self._session(write=True) as s:
            row = s.get(WorkerRow, executor_id)
            if row is None:
                s.add(WorkerRow(executor_id=executor_id, host=host, pid=pid, started_at=now,
                                last_seen=now))
                return
            if (row.host, row.pid) != (host, pid):
                row.host, row.pid, row.started_at = host, pid, now
            row.last_seen = now

    def worker_left(self, executor_id: str, *, pid: int) -> None:
        """Forget a stopping worker (unless another process has taken its ID since)."""
        with self._session(write=True) as s:
            s.execute(delete(WorkerRow).where(WorkerRow.executor_id == executor_id,
                                              WorkerRow.pid == pid))

    def workers(self) -> list[Worker]:
        """Every worker that has not signed off, the most recently seen first."""
        with self._session(write=False) as s:
            rows = s.scalars(select(WorkerRow).order_by(WorkerRow.last_seen.desc()))
            return [Worker(r.executor_id, r.host, r.pid, r.started_at, r.last_seen)
                    for r in rows]

    def live_workers(self, within: dt.timedelta) -> set[str]:
        """Executor IDs of the workers seen within the last ``within``."""
        cutoff = _now() - within
        return {w.executor_id for w in self.workers() if w.last_seen >= cutoff}

    # -- steps (hot path: Core statements, one short transaction each) ------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as connection:
                yield connection
        except SQLAlchemyError as exc:
            raise CatalogError(
                f"the catalog at {self.url} failed: {exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0]}; check that the database is reachable"
            ) from exc

    def step_started(self, run_id: str, name: str) -> int | None:
        """Mark the step running (the run too, if it was pending) and return its attempt
        number, counting every attempt since the run was created; None (and nothing
        written) when the run is no longer pending or running (cancelled meanwhile)."""
        now = _now()
        with self._write() as c:
            status = c.execute(_RUN_STATUS, {"p_run": run_id}).scalar()
            if status is None:
                raise RunNotFoundError(run_id)
            if status not in ACTIVE_RUN_STATUSES:
                return None
            attempts = c.execute(
                _STEP_RUNNING, {"p_run": run_id, "p_name": name, "p_now": now}).scalar()
            if attempts is None:
                raise self._no_step(run_id, name)
            if status == "pending":
                c.execute(_RUN_RUNNING, {"p_run": run_id, "p_now": now})
            return int(attempts)

    def step_waiting(
        self, run_id: str, name: str, *, status: Literal["waiting", "retrying"], message: str
    ) -> None:
        """The step is pending on the provider (``waiting``) or failed transiently and will
        be tried again (``retrying``); ``message`` says why."""
        values: dict[str, Any] = {"status": status, "message": message}
        if status == "retrying":
            values["error"] = message
        self._update_step(run_id, name, values)

    def step_succeeded(
        self, run_id: str, name: str, outputs: Mapping[str, Any],
        tenant_outputs: Mapping[str, object],
    ) -> None:
        """Record the step's outputs, and the tenant's resource outputs it produced."""
        now = _now()
        with self._write() as c:
            self._update_step(run_id, name, {
                "status": "succeeded", "finished_at": now, "outputs": dict(outputs),
                "error": None, "message": None,
            }, connection=c)
            if tenant_outputs:
                tenant_id, records = c.execute(_RUN_TENANT, {"p_run": run_id}).one()
                values = _output_values(records, tenant_outputs)
                values["updated_at"] = now
                c.execute(_TENANT_UPDATE, {"p_tenant": tenant_id, **values})

    def step_failed(self, run_id: str, name: str, error: str) -> None:
        self._update_step(run_id, name, {"status": "failed", "finished_at": _now(),
                                         "error": error})

    def _update_step(
        self, run_id: str, name: str, values: dict[str, Any], *,
        connection: Connection | None = None,
    ) -> None:
        if connection is None:
            with self._write() as c:
                self._update_step(run_id, name, values, connection=c)
            return
        result = connection.execute(_STEP_UPDATE, {"p_run": run_id, "p_name": name, **values})
        if not getattr(result, "rowcount", 1):
            raise self._no_step(run_id, name)

    @staticmethod
    def _no_step(run_id: str, name: str) -> CatalogError:
        return CatalogError(
            f"run {run_id} has no step {name!r}; the plan changed under a running run"
        )


# Built once: the hot path then only binds values (no statement construction per call).
_RUN_STATUS = select(RunRow.status).where(RunRow.id == bindparam("p_run"))
_STEP_RUNNING = (
    update(StepRow)
    .where(StepRow.run_id == bindparam("p_run"), StepRow.name == bindparam("p_name"))
    .values(status="running", attempts=StepRow.attempts + 1,
            started_at=func.coalesce(StepRow.started_at,
                                     bindparam("p_now", type_=UtcDateTime())),
            finished_at=None, message=None)
    .returning(StepRow.attempts)
)
# Without .values(): the SET clause is the columns named in the parameters.
_STEP_UPDATE = update(StepRow).where(
    StepRow.run_id == bindparam("p_run"), StepRow.name == bindparam("p_name"))
_TENANT_UPDATE = update(TenantRow).where(TenantRow.id == bindparam("p_tenant"))
_RUN_TENANT = (
    select(TenantRow.id, TenantRow.dns_records)
    .join(RunRow, RunRow.tenant_id == TenantRow.id).where(RunRow.id == bindparam("p_run"))
)
_RUN_RUNNING = (
    update(RunRow).where(RunRow.id == bindparam("p_run"), RunRow.status == "pending")
    .values(status="running", started_at=bindparam("p_now", type_=UtcDateTime()))
)


def _output_values(
    dns_records: Mapping[str, str] | None, updates: Mapping[str, object]
) -> dict[str, Any]:
    """Tenant column values for ``updates``; ``dns_records`` merges (None deletes)."""
    values: dict[str, Any] = {}
    for column, value in updates.items():
        if column not in _OUTPUT_COLUMNS:
            raise CatalogError(f"{column!r} is not a tenant output column")
        if column == "dns_records":
            assert isinstance(value, Mapping)
            merged = dict(dns_records or {})
            for key, item in value.items():
                if item is None:
                    merged.pop(str(key), None)
                else:
                    merged[str(key)] = str(item)
            values[column] = merged
        else:
            values[column] = value
    return values


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Transactions are begun explicitly in _sqlite_on_begin, not by the driver.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL survives a killed process; only a power loss may drop the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    readonly = connection.get_execution_options().get("tenantops_readonly", False)
    connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")
