"""What a request for each kind of run becomes before the catalog opens it: the options the
plan is made from (and the tenant's history shows), the plan, the tenant's fields once the
run is done, and, for a change, the diff (`PreparedRun`).

The same preparation serves the run and its preview, so ``--dry-run`` and the dashboard's
confirm page show exactly the plan the run would follow. The catalog checks, in the
transaction that opens the run, that the tenant still is what the preparation read (an
update's ``from`` values, the names it retires): a plan made from a stale read is refused.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tenantops.catalog import (
    IdempotencyClaim,
    Placement,
    RetiringDomain,
    Run,
    RunKind,
    RunRequest,
    Tenant,
    is_suspended,
)
from tenantops.catalog.runs import CHANGED_FIELDS, RUN_KINDS
from tenantops.config import DEFAULT_SERVER, Settings
from tenantops.errors import MigrationError, PlacementError, SpecError, SpecProblem
from tenantops.provisioning.custom_steps import declared
from tenantops.provisioning.domains import DomainRules, recorded_domain_kind
from tenantops.provisioning.placement import (
    connection_secret_of,
    needs_move,
    plan_profile,
    server_slots,
)
from tenantops.provisioning.plans import (
    Plan,
    Preview,
    ResourceNames,
    RetiringName,
    StepInputs,
    domain_options,
    plan_for,
    preview,
)
from tenantops.provisioning.plans.changes import retiring_options
from tenantops.provisioning.providers.database import DatabaseSchema
from tenantops.provisioning.providers.registry import Providers
from tenantops.provisioning.schema_migrations import MigrationSource
from tenantops.provisioning.spec import TenantSpec

__all__ = [
    "MAX_GRACE_SECONDS",
    "MAX_REASON_LENGTH",
    "PreparedRun",
    "TenantChange",
    "migration_source",
    "prepare_adoption",
    "prepare_migration",
    "prepare_move",
    "prepare_offboarding",
    "prepare_onboarding",
    "prepare_reconcile",
    "prepare_renewal",
    "prepare_resumption",
    "prepare_rotation",
    "prepare_suspension",
    "prepare_update",
    "refuse_unrotatable",
]

MAX_REASON_LENGTH = 500
MAX_GRACE_SECONDS = 90 * 86400.0


@dataclass(frozen=True)
class TenantChange:
    """What an update asks for: each field to change (None: keep it), tags to set (a value)
    or remove (None), whether to remove the previous administrator, how long the previous
    custom domain keeps serving (None: ``domains.change_grace_seconds``), and why."""

    display_name: str | None = None
    custom_domain: str | None = None
    plan: str | None = None
    admin_email: str | None = None
    tags: Mapping[str, str | None] = field(default_factory=dict)
    remove_previous_admin: bool = False
    grace_seconds: float | None = None
    reason: str | None = None

    def asks_for(self) -> dict[str, Any]:
        """The fields the request sets, as given."""
        asked: dict[str, Any] = {name: getattr(self, name) for name in
                                 ("display_name", "custom_domain", "plan", "admin_email")
                                 if getattr(self, name) is not None}
        if self.tags:
            asked["tags"] = dict(self.tags)
        return asked


@dataclass(frozen=True)
class PreparedRun:
    """A run ready to be opened: ``spec`` is the tenant once it is done, ``retiring`` the
    names it will still serve besides its custom domain, ``diff`` the fields that change,
    ``names`` where its resources are (when not where its slug says), ``outputs`` what an
    adoption records of them."""

    kind: RunKind
    spec: TenantSpec
    options: dict[str, Any]
    plan: Plan
    retiring: tuple[str, ...]
    diff: dict[str, dict[str, Any]] = field(default_factory=dict)
    names: ResourceNames = field(default_factory=ResourceNames)
    outputs: dict[str, object] = field(default_factory=dict)

    def request(self, providers: Providers, *, requested_by: str,
                idempotency: IdempotencyClaim | None) -> RunRequest:
        # Upkeep touches no domain: the names a tenant retires meanwhile are not its concern.
        upkeep = RUN_KINDS[self.kind].keeps_status
        return RunRequest(self.kind, self.spec.slug, requested_by,
                          self.plan.templates(providers), self.options,
                          spec=self.spec if self.kind in ("onboard", "update", "adopt") else None,
                          retiring=None if upkeep else self.retiring, idempotency=idempotency,
                          outputs=self.outputs if self.kind == "adopt" else None)

    def preview(self, providers: Providers, settings: Settings) -> Preview:
        return preview(self.plan, StepInputs(self.spec, providers, settings, names=self.names),
                       diff=self.diff)


def _custom(settings: Settings) -> dict[str, Any]:
    if not settings.steps:
        return {}
    return {"custom_steps": [d.options() for d in declared(settings.steps)]}


def _retiring_names(domains: Sequence[str], settings: Settings) -> tuple[RetiringName, ...]:
    rules = DomainRules.from_settings(settings)
    return tuple(RetiringName(d, rules.kind_of(d)) for d in sorted(set(domains)))


def _prepared(kind: RunKind, spec: TenantSpec, options: dict[str, Any],
              retiring: Sequence[str], diff: dict[str, dict[str, Any]] | None = None,
              tenant: Tenant | None = None) -> PreparedRun:
    return PreparedRun(kind, spec, options, plan_for(kind, options), tuple(sorted(retiring)),
                       diff or {}, ResourceNames.of(tenant))


def _where(placements: Sequence[Placement]) -> dict[str, Any]:
    """The ``placement`` option: the copy the tenant is served from (none: a tenant whose
    data was never placed, or made before placements were recorded)."""
    current = next((p for p in placements if p.state == "current"), None)
    return {} if current is None else {"placement": current.options()}


def prepare_onboarding(spec: TenantSpec, settings: Settings, providers: Providers, *,
                       previewing: bool = False) -> PreparedRun:
    """``database``: the profile of the tenant's plan (`SpecError` naming ``plan`` for a
    plan the settings do not have); the run places the data when it runs."""
    profile = plan_profile(spec.plan, settings)
    options = {**domain_options(spec.custom_domain, settings, providers,
                                previewing=previewing), **_custom(settings),
               "database": profile.options(spec.slug)}
    if settings.migrations.folder is not None and settings.migrations.on_onboarding and (
            DatabaseSchema in providers.database.resource_types):
        options["schema"] = _schema(migration_source(settings), None)
    return _prepared("onboard", spec, options, ())


def migration_source(settings: Settings) -> MigrationSource:
    """The tenant migrations ``migrations.folder`` holds; `MigrationError` when it is not
    set or cannot be read."""
    if settings.migrations.folder is None:
        raise MigrationError(
            "migrations.folder is not set: point it at the folder of the SaaS's own "
            "migrations (Alembic scripts, or SQL files applied in name order) in "
            "tenantops.toml")
    return MigrationSource.load(settings.migrations.folder, settings.migrations.kind)


def _schema(source: MigrationSource, revision: str | None) -> dict[str, str]:
    return {"source": str(source.folder), "kind": source.kind,
            "revision": source.resolve(revision)}


def refuse_unrotatable(tenant: Tenant, placements: Sequence[Placement], provider: str,
                       modes: Sequence[str]) -> None:
    """Refuse credential rotation of ``tenant`` when the database ``provider`` does not
    rotate its placement's mode (``modes``: `DatabaseProvider.rotation_modes`)."""
    current = next((p for p in placements if p.state == "current"), None)
    mode = "database" if current is None else current.mode
    if mode in modes:
        return
    where = ("its own database" if current is None or current.schema is None else
             f"schema {current.schema} in the pooled database {current.database} on server "
             f"{current.server}")
    raise SpecError([SpecProblem(
        "tenant", tenant.slug,
        f"is placed in {mode} mode ({where}); the database provider {provider} cannot rotate "
        f"credentials of {mode}-mode tenants (it rotates: {', '.join(modes) or 'none'}; "
        "tenantops needs SQL access to the tenant's logins to switch between two of them): "
        "leave the tenant out of the fleet's selection, or rotate its credentials where the "
        "provider's service does")])


def prepare_migration(tenant: Tenant, settings: Settings, *, revision: str | None,
                      request: str, source: MigrationSource | None = None,
                      placements: Sequence[Placement] = ()) -> PreparedRun:
    """A migration of ``tenant``'s schema to ``revision`` (None: head) of the migrations
    folder, in its database where its placement (``placements``) says; ``request`` names
    what asked for it (a fleet run and its attempt, or an API request), so a repeat of the
    same request finds its run. A schema-mode tenant's migrations run in its schema of the
    pooled database (first on the search path)."""
    loaded = source or migration_source(settings)
    options: dict[str, Any] = {"schema": _schema(loaded, revision), "request": request,
                               **_where(placements)}
    return _prepared("migrate", TenantSpec.stored(tenant.spec_fields()), options, ())


def prepare_rotation(tenant: Tenant, settings: Settings, *, request: str,
                     placements: Sequence[Placement] = ()) -> PreparedRun:
    """A rotation of ``tenant``'s database credentials from the login it uses now to the
    other of its two logins (`tenantops.provisioning.plans.upkeep`), on the server its
    placement (``placements``) records, its connection secret switched too; ``request``
    names what asked for it and versions the new secret. A schema-mode tenant's logins
    switch in its schema of the pooled database (``rotation.schema``); whether the provider
    rotates that mode is the fleet's check (`refuse_unrotatable`)."""
    if not (tenant.database_name and tenant.database_login and tenant.database_secret):
        raise SpecError([SpecProblem("tenant", tenant.slug, "has no database login to rotate")])
    placed = next((p for p in placements if p.state == "current"), None)
    owner = f"{tenant.slug.replace('-', '_')}_app"
    current = tenant.database_login
    to_login = f"{owner}_b" if current == owner else owner
    base_secret = f"{tenant.slug}-database-password"
    to_secret = f"{base_secret}-b" if to_login != owner else base_secret
    rotation = settings.rotation
    options: dict[str, Any] = {"request": request, "rotation": {
        "database": tenant.database_name if placed is None else placed.database,
        "owner": owner, "from_login": current,
        "to_login": to_login, "to_secret": to_secret,
        "version": request.replace(" ", "_")[:100],
        "min_grace_seconds": rotation.min_grace_seconds,
        "max_grace_seconds": rotation.max_grace_seconds,
        "poll_seconds": rotation.poll_seconds,
        "server": DEFAULT_SERVER if placed is None else placed.server,
        "schema": None if placed is None else placed.schema,
        "connection_secret": None if placed is None else connection_secret_of(tenant.slug)}}
    return _prepared("rotate", TenantSpec.stored(tenant.spec_fields()), options, ())


def prepare_renewal(tenant: Tenant, *, request: str) -> PreparedRun:
    """A renewal of the certificate of ``tenant``'s custom domain, if it still is the one
    the catalog records (`tenantops.provisioning.plans.upkeep`)."""
    if not tenant.certificate_thumbprint:
        raise SpecError([SpecProblem("tenant", tenant.slug, "has no certificate to renew")])
    options: dict[str, Any] = {"request": request, "renewal": {
        "hostname": tenant.custom_domain, "thumbprint": tenant.certificate_thumbprint}}
    return _prepared("renew", TenantSpec.stored(tenant.spec_fields()), options, ())


def prepare_offboarding(tenant: Tenant, retiring: Sequence[RetiringDomain], settings: Settings,
                        *, keep_database: bool, placements: Sequence[Placement] = ()
                        ) -> PreparedRun:
    names = _retiring_names([r.domain for r in retiring], settings)
    options: dict[str, Any] = {"keep_database": keep_database, **_custom(settings),
                               **_where(placements)}
    others = [p.options() for p in placements if p.state != "current"]
    if others and not keep_database:
        options["other_copies"] = others
    if names:
        options["retiring_domains"] = retiring_options(names)
    return _prepared("offboard", TenantSpec.stored(tenant.spec_fields()), options,
                     [n.domain for n in names], tenant=tenant)


def _reason(reason: str | None, *, required: bool) -> str | None:
    text = " ".join((reason or "").split())
    problem = None
    if required and not text:
        problem = "is required: say why the tenant is suspended (it is kept in its history)"
    elif len(text) > MAX_REASON_LENGTH:
        problem = f"must be at most {MAX_REASON_LENGTH} characters (got {len(text)})"
    elif any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in text):
        problem = "must not contain control or unassigned characters"
    if problem:
        raise SpecError([SpecProblem("reason", reason, problem)])
    return text or None


def _state_change(kind: RunKind, tenant: Tenant, retiring: Sequence[RetiringDomain],
                  settings: Settings, reason: str | None,
                  placements: Sequence[Placement]) -> PreparedRun:
    names = _retiring_names([r.domain for r in retiring], settings)
    options: dict[str, Any] = {**_custom(settings), **_where(placements)}
    if reason:
        options["reason"] = reason
    if names:
        options["retiring_domains"] = retiring_options(names)
    return _prepared(kind, TenantSpec.stored(tenant.spec_fields()), options,
                     [n.domain for n in names], tenant=tenant)


def prepare_suspension(tenant: Tenant, retiring: Sequence[RetiringDomain], settings: Settings,
                       *, reason: str | None, placements: Sequence[Placement] = ()
                       ) -> PreparedRun:
    return _state_change("suspend", tenant, retiring, settings,
                         _reason(reason, required=True), placements)


def prepare_resumption(tenant: Tenant, retiring: Sequence[RetiringDomain], settings: Settings,
                       *, reason: str | None = None, placements: Sequence[Placement] = ()
                       ) -> PreparedRun:
    return _state_change("resume", tenant, retiring, settings,
                         _reason(reason, required=False), placements)


def prepare_update(tenant: Tenant, latest: Run | None, retiring: Sequence[RetiringDomain],
                   change: TenantChange, settings: Settings, providers: Providers, *,
                   previewing: bool = False, placements: Sequence[Placement] = ()
                   ) -> PreparedRun:
    """The update ``change`` asks of ``tenant`` (its latest run and retiring names as read).
    `SpecError` for an invalid new value or request. The diff may be empty: nothing to
    change."""
    current = tenant.spec_fields()
    tags = dict(current["tags"])
    for key, value in change.tags.items():
        if value is None:
            tags.pop(key, None)
        else:
            tags[key] = value
    wanted = {**current, **{k: v for k, v in change.asks_for().items() if k != "tags"},
              "tags": tags}
    spec = TenantSpec.parse(wanted, plans=settings.plans if change.plan is not None
                            else None)
    problems: list[SpecProblem] = []
    if change.remove_previous_admin and spec.admin_email == tenant.admin_email:
        problems.append(SpecProblem(
            "remove_previous_admin", True,
            "needs a new admin_email: the previous administrator is removed only when "
            "another one is invited"))
    if change.grace_seconds is not None and not 0 <= change.grace_seconds <= MAX_GRACE_SECONDS:
        problems.append(SpecProblem("grace_seconds", change.grace_seconds,
                                    f"must be between 0 and {MAX_GRACE_SECONDS:g} (90 days)"))
    diff = {name: {"from": current[name], "to": getattr(spec, name)}
            for name in CHANGED_FIELDS if current[name] != getattr(spec, name)}
    suspended = is_suspended(tenant.status, (latest.kind, latest.options) if latest else None)
    if "custom_domain" in diff and suspended:
        problems.append(SpecProblem(
            "custom_domain", spec.custom_domain,
            "cannot change while the tenant is suspended: resume it first (a suspended "
            "tenant's new hostname could not be verified and certified)"))
    if problems:
        raise SpecError(problems)
    reason = _reason(change.reason, required=False)
    options: dict[str, Any] = {"changes": diff, "suspended": suspended, **_custom(settings),
                               **_where(placements)}
    if "plan" in diff:
        profile = plan_profile(spec.plan, settings)
        serving = next((p for p in placements if p.state == "current"), None)
        if serving is not None and needs_move(serving, profile, settings, spec.slug):
            _refuse_unfrozen_move(settings, suspended, tenant.slug, profile.pool)
            options["move"] = _move_options(profile.options(spec.slug), placements,
                                            settings.providers.database.move_grace_seconds,
                                            tenant.slug)
        elif serving is not None and dict(serving.details) != profile.details():
            # Another Azure SQL elastic pool or SKU: the database is changed in place (a
            # PATCH of it, no copy), then the placement's record says where it is.
            options["placement"] = {**options["placement"], "details": profile.details()}
            options["profile_details"] = profile.details()
    if reason:
        options["reason"] = reason
    if "admin_email" in diff:
        options["remove_previous_admin"] = change.remove_previous_admin
    names = {r.domain for r in retiring}
    if "custom_domain" in diff:
        options.update(domain_options(spec.custom_domain, settings, providers,
                                      previewing=previewing))
        names = (names | {tenant.custom_domain}) - {spec.custom_domain}
    retiring_names = _retiring_names(sorted(names), settings)
    if retiring_names:
        options["retiring_domains"] = retiring_options(retiring_names)
        options["grace_seconds"] = (settings.domains.change_grace_seconds
                                    if change.grace_seconds is None else change.grace_seconds)
    return _prepared("update", spec, options, sorted(names), diff, tenant=tenant)


def prepare_reconcile(tenant: Tenant, runs: Sequence[Run], retiring: Sequence[RetiringDomain],
                      settings: Settings, *, reason: str | None = None,
                      placements: Sequence[Placement] = ()) -> PreparedRun:
    """The reconcile run of ``tenant`` (its runs oldest first, its retiring names as read):
    every resource of its recorded state converged back, in the state the tenant is meant
    to be in (a suspended tenant's stay suspended), for the kind of domain its runs
    recorded. `SpecError` for an invalid ``reason``."""
    latest = runs[-1] if runs else None
    names = _retiring_names([r.domain for r in retiring], settings)
    options: dict[str, Any] = {
        "domain_kind": recorded_domain_kind(runs), **_where(placements),
        "suspended": is_suspended(tenant.status, (latest.kind, latest.options)
                                  if latest is not None else None),
        **_custom(settings)}
    text = _reason(reason, required=False)
    if text:
        options["reason"] = text
    if names:
        options["retiring_domains"] = retiring_options(names)
    return _prepared("reconcile", TenantSpec.stored(tenant.spec_fields()), options,
                     [n.domain for n in names], tenant=tenant)


def prepare_adoption(spec: TenantSpec, names: ResourceNames, settings: Settings, *,
                     suspended: bool, outputs: Mapping[str, object],
                     summary: Mapping[str, Any]) -> PreparedRun:
    """The adoption run an import records for ``spec`` (made before tenantops): the kind of
    its domain as the rules say now, whether it is suspended, and what was found
    (``summary``: outcome, missing and drifted resources; ``outputs``: what the tenant's
    record keeps of them)."""
    rules = DomainRules.from_settings(settings)
    rules.check(spec.custom_domain)
    options: dict[str, Any] = {"domain_kind": rules.kind_of(spec.custom_domain),
                               "suspended": suspended, "source": "import", **dict(summary)}
    return PreparedRun("adopt", spec, options, plan_for("adopt", options), (), {}, names,
                       dict(outputs))


def _refuse_unfrozen_move(settings: Settings, suspended: bool, slug: str, pool: str) -> None:
    """An azure-sql move needs the tenant suspended: tenantops holds no SQL login there
    (docs/azure.md), so the move's write freeze would freeze nothing, and what the app wrote
    after Azure SQL's copy completed would be lost at the switch."""
    if settings.providers.database.name == "azure-sql" and not suspended:
        raise PlacementError(
            f"tenant {slug!r} is not suspended: moving its data on azure-sql needs it "
            "suspended (tenantops holds no SQL login on Azure SQL, so it cannot freeze writes "
            "while the database is copied, and writes after the copy would be lost); run "
            f"tenantops tenants suspend {slug}, move it, then resume it", pool=pool)


def _move_options(target: Mapping[str, Any], placements: Sequence[Placement], grace: float,
                  slug: str) -> dict[str, Any]:
    """A move's options: the target profile, the grace period, and a target copy an
    unfinished move left (dropped first)."""
    if any(p.state == "retiring" and p.retire_at is None for p in placements):
        raise PlacementError(
            f"tenant {slug!r} was switched to a new copy by a move that has not removed the "
            "old one yet; retry that move's run to finish it", pool=str(target.get("pool")))
    options: dict[str, Any] = {"target": dict(target), "grace_seconds": grace}
    stale = next((p for p in placements if p.state == "target"), None)
    if stale is not None:
        options["stale"] = stale.options()
    return options


def prepare_move(tenant: Tenant, latest: Run | None, retiring: Sequence[RetiringDomain],
                 placements: Sequence[Placement], settings: Settings, *,
                 server: str | None = None, abandon: bool = False,
                 grace_seconds: float | None = None, reason: str | None = None
                 ) -> PreparedRun:
    """A move of ``tenant``'s data to ``server`` (None: the least-loaded of its plan's pool
    with room), in its plan's mode; or with ``abandon`` the undoing of a move that did not
    switch. An update run with no field changed (`tenantops.provisioning.plans.moves`).
    `SpecError` for a bad request, `PlacementError` when there is nothing to move or undo."""
    spec = TenantSpec.stored(tenant.spec_fields())
    current = next((p for p in placements if p.state == "current"), None)
    problems: list[SpecProblem] = []
    if grace_seconds is not None and not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
        problems.append(SpecProblem("grace_seconds", grace_seconds,
                                    f"must be between 0 and {MAX_GRACE_SECONDS:g} (90 days)"))
    if abandon and server is not None:
        problems.append(SpecProblem("server", server, "must not be given with abandon: an "
                                    "abandoned move goes back to the copy the tenant has"))
    if problems:
        raise SpecError(problems)
    profile = plan_profile(spec.plan, settings)
    if current is None:
        raise PlacementError(
            f"tenant {tenant.slug!r} has no recorded copy of its data to move (its "
            "onboarding did not place it, or it was made before placements were recorded "
            "and has no database)", pool=profile.pool, server=server)
    suspended = is_suspended(tenant.status, (latest.kind, latest.options) if latest else None)
    options: dict[str, Any] = {"changes": {}, "suspended": suspended, **_custom(settings),
                               "placement": current.options()}
    if reason := _reason(reason, required=False):
        options["reason"] = reason
    grace = (settings.providers.database.move_grace_seconds if grace_seconds is None
             else grace_seconds)
    if abandon:
        stale = next((p for p in placements if p.state == "target"), None)
        if stale is None:
            raise PlacementError(
                f"tenant {tenant.slug!r} has no unfinished move to abandon: no copy of its "
                "data is being made (a move that switched already is finished by retrying "
                "its run)", pool=profile.pool)
        options["move"] = {"abandon": True, "stale": stale.options()}
    else:
        slots = [slot.name for slot in server_slots(settings, profile.pool)]
        if server is not None and server not in slots:
            raise PlacementError(
                f"server {server!r} is not in pool {profile.pool!r} of plan {spec.plan!r} "
                f"(its servers: {', '.join(slots) or 'none'}); name one of them, or change "
                "the tenant's plan", pool=profile.pool, server=server)
        if (current.location == (server or current.server, *profile.names(spec.slug))
                and (server is not None or len(slots) == 1)):
            raise PlacementError(
                f"tenant {tenant.slug!r} already is on server {current.server!r} in "
                f"{current.mode} mode; name another server", pool=profile.pool,
                server=current.server)
        _refuse_unfrozen_move(settings, suspended, tenant.slug, profile.pool)
        options["move"] = _move_options(profile.options(spec.slug, server), placements,
                                        grace, tenant.slug)
    # The names it retires are checked when the run is opened, not retired again by it.
    return _prepared("update", spec, options, [r.domain for r in retiring], tenant=tenant)
