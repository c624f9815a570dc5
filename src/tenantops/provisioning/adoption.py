"""Adopting tenants made before tenantops (issue 14 §5): ``tenantops import FILE`` and
``POST /api/tenants/import``.

Each entry is a tenant spec, with optionally the names its runbooks gave its resources
(``resources``: ``database``, ``login``, ``secret``, ``organization_id``) and whether it is
suspended. An import changes nothing on any provider: for each entry it

1. validates the spec (and the domain rules), and refuses a slug tenantops already knows, a
   custom domain equal to, above or below another tenant's, a slug twice in one import, and
   resource names another tenant is recorded with;
2. observes every resource of the tenant's recorded state (`reconcile_plan`, as a drift
   check does) through its provider, reads only; a database owned by a login another
   tenant is recorded with is refused (it is that tenant's);
3. reports ``adopted`` (everything found as tenantops would make it), ``partial`` (what is
   missing or differs, resource by resource) or ``refused`` (why, and nothing recorded): a
   resource whose provider could not be asked is a refusal too, since nothing can be said
   of it;
4. unless it is a dry run, records an adopted or partial tenant with an ``adopt`` run that
   is done when it opens (the observation is its one step), with what was found (its
   database names, its organization's ID). A later ``tenantops reconcile`` of a partial
   tenant makes what is missing and converges what differs; drift checks see it as any
   other tenant.

An organization a provider marks as tenantops' (Keycloak's tenant attribute) and found
without the mark is adopted by its ID (the only difference is no reason for ``partial``; the
result says so); the first reconcile adds the mark (until then drift checks report
``managed: recorded True, found False``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from tenantops.catalog import Tenant
from tenantops.errors import (
    DomainConflictError,
    SpecError,
    SpecProblem,
    TenantConflictError,
    TenantOpsError,
)
from tenantops.provisioning.domains import DomainRules
from tenantops.provisioning.drift import ResourceDrift, observe_plan
from tenantops.provisioning.plans import ResourceNames, StepInputs
from tenantops.provisioning.run_requests import prepare_adoption
from tenantops.provisioning.spec import TenantSpec

if TYPE_CHECKING:
    from tenantops.provisioning.engine import Engine

__all__ = ["IMPORT_REQUESTER", "AdoptionResult", "Importer", "Outcome", "parse_entry"]

Outcome = Literal["adopted", "partial", "refused"]
IMPORT_REQUESTER = "tenantops import"

_RESOURCE_KEYS = ("database", "login", "secret", "organization_id")
_ENTRY_KEYS = frozenset({"resources", "suspended"})


@dataclass(frozen=True)
class Entry:
    """One tenant to adopt: its spec, where its resources are, whether it is suspended."""

    spec: TenantSpec
    names: ResourceNames
    suspended: bool


@dataclass(frozen=True)
class AdoptionResult:
    """What an import found of one entry: ``outcome``, why (``reasons``: each missing or
    differing resource for a partial tenant, the refusal for a refused one), each resource's
    finding, and the adoption run when it was recorded."""

    slug: str
    outcome: Outcome
    reasons: tuple[str, ...] = ()
    resources: tuple[ResourceDrift, ...] = ()
    run_id: str | None = None
    recorded: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"slug": self.slug, "outcome": self.outcome, "reasons": list(self.reasons),
                "recorded": self.recorded, "run_id": self.run_id,
                "resources": [r.to_json() for r in self.resources]}


def parse_entry(data: object, index: int) -> Entry:
    """One entry of an import: a spec, with optional ``resources`` and ``suspended``.
    `SpecError` naming the field (``tenants[3].resources.login``), the value and the rule."""
    where = f"tenants[{index}]"
    if not isinstance(data, Mapping):
        raise SpecError([SpecProblem(where, data, "must be an object: a tenant spec")])
    spec = TenantSpec.parse({k: v for k, v in data.items() if k not in _ENTRY_KEYS})
    resources = data.get("resources") or {}
    if not isinstance(resources, Mapping):
        raise SpecError([SpecProblem(f"{where}.resources", resources,
                                     "must be an object of resource names")])
    unknown = sorted(set(resources) - set(_RESOURCE_KEYS))
    if unknown:
        raise SpecError([SpecProblem(f"{where}.resources.{unknown[0]}", resources[unknown[0]],
                                     f"must be one of {', '.join(_RESOURCE_KEYS)}")])
    for key, value in resources.items():
        if value is not None and (not isinstance(value, str) or not value or len(value) > 128):
            raise SpecError([SpecProblem(f"{where}.resources.{key}", value,
                                         "must be a name of 1 to 128 characters")])
    suspended = data.get("suspended", False)
    if not isinstance(suspended, bool):
        raise SpecError([SpecProblem(f"{where}.suspended", suspended, "must be true or false")])
    return Entry(spec, ResourceNames(*(resources.get(k) for k in _RESOURCE_KEYS)), suspended)


def _describe(r: ResourceDrift) -> str:
    detail = r.describe()
    return f"{r.resource} ({r.provider}): {detail}"


def _outputs(found: Sequence[ResourceDrift], names: ResourceNames) -> dict[str, object]:
    """What the tenant's record keeps: its database names (as given, else tenantops' own),
    its organization's ID (as found, else as given), the DNS records and hostname it has."""
    outputs: dict[str, object] = {}
    by_step = {r.step: r for r in found}
    database = by_step.get("create_database")
    if database is not None and database.desired:
        # Where they are, or where a reconcile is to make them: the names given (else
        # tenantops' own), whether found or not.
        outputs.update(database_name=database.desired.get("name"),
                       database_login=database.desired.get("login"),
                       database_secret=database.desired.get("secret"))
    organization = by_step.get("create_organization")
    if organization is not None and organization.current and organization.current.get(
            "organization_id"):
        outputs["organization_id"] = organization.current["organization_id"]
    elif names.organization_id:
        outputs["organization_id"] = names.organization_id
    records: dict[str, str] = {}
    for step in ("create_cname_record", "create_verification_record"):
        record = by_step.get(step)
        if record is not None and record.state in ("in_sync", "drifted") and record.desired:
            records[f"{record.desired.get('type')} {record.desired.get('name')}"] = str(
                record.desired.get("value"))
    if records:
        outputs["dns_records"] = records
    if by_step.get("bind_hostname") is not None and by_step["bind_hostname"].state in (
            "in_sync", "drifted"):
        desired = by_step["bind_hostname"].desired or {}
        if desired.get("hostname"):
            outputs["hostname"] = desired["hostname"]
    return outputs


@dataclass
class Importer:
    """Adopts tenants with ``engine``'s catalog and providers (reads only on providers)."""

    engine: Engine
    _recorded: dict[str, str] = field(default_factory=dict)

    def run(self, entries: Sequence[object], *, dry_run: bool, requested_by: str
            ) -> list[AdoptionResult]:
        """Each entry's result, in order (see the module docstring)."""
        parsed: list[Entry | AdoptionResult] = []
        seen: dict[str, int] = {}
        for index, data in enumerate(entries):
            try:
                entry = parse_entry(data, index)
            except SpecError as exc:
                slug = data.get("slug") if isinstance(data, Mapping) else None
                parsed.append(AdoptionResult(str(slug or f"tenants[{index}]"), "refused",
                                             (str(exc),)))
                continue
            if entry.spec.slug in seen:
                parsed.append(AdoptionResult(entry.spec.slug, "refused", (
                    f"slug {entry.spec.slug!r} is also tenants[{seen[entry.spec.slug]}] of this "
                    "import; a tenant is adopted once",)))
                continue
            seen[entry.spec.slug] = index
            parsed.append(entry)
        owners = self._recorded_names()
        pending = [p for p in parsed if isinstance(p, Entry)]
        workers = min(self.engine.settings.drift.concurrency, max(len(pending), 1))
        with ThreadPoolExecutor(max_workers=workers,
                                thread_name_prefix="tenantops-import") as pool:
            found = dict(zip([e.spec.slug for e in pending],
                             pool.map(lambda e: self._examine(e, owners), pending),
                             strict=True))
        results: list[AdoptionResult] = []
        for item in parsed:
            if isinstance(item, AdoptionResult):
                results.append(item)
                continue
            result = found[item.spec.slug]
            if result.outcome != "refused" and not dry_run:
                result = self._record(item, result, requested_by)
            results.append(result)
        return results

    def _recorded_names(self) -> dict[tuple[str, str], str]:
        """Which live tenant each database, login and organization is recorded for."""
        owners: dict[tuple[str, str], str] = {}
        for tenant in self.engine.catalog.list_tenants():
            if tenant.status == "offboarded":
                continue
            for kind, value in (("database", tenant.database_name),
                                ("login", tenant.database_login),
                                ("organization_id", tenant.organization_id)):
                if value:
                    owners[(kind, value)] = tenant.slug
        return owners

    def _examine(self, entry: Entry, owners: Mapping[tuple[str, str], str]) -> AdoptionResult:
        spec, settings = entry.spec, self.engine.settings
        slug = spec.slug
        try:
            rules = DomainRules.from_settings(settings)
            rules.check(spec.custom_domain)
            known: Tenant | None = self.engine.catalog.find_tenant(slug)
            if known is not None and known.status != "offboarded":
                raise TenantConflictError(
                    f"slug {slug!r} is taken: tenantops already knows tenant {slug!r} "
                    f"({known.status}); compare it with its resources instead: tenantops "
                    f"drift {slug}")
            self.engine.catalog.check_domain_free(spec.custom_domain, slug)
            prepared = prepare_adoption(spec, entry.names, settings, suspended=entry.suspended,
                                        outputs={}, summary={})
        except DomainConflictError as exc:
            return AdoptionResult(slug, "refused", (str(exc.naming_holder()),))
        except TenantOpsError as exc:
            return AdoptionResult(slug, "refused", (str(exc),))
        for kind, value in (("database", entry.names.database), ("login", entry.names.login),
                            ("organization_id", entry.names.organization_id)):
            holder = owners.get((kind, value)) if value else None
            if holder is not None and holder != slug:
                return AdoptionResult(slug, "refused", (
                    f"{kind} {value!r} is recorded for tenant {holder!r}; a resource belongs "
                    "to one tenant. Give the names of this tenant's own resources",))
        from tenantops.provisioning.plans.reconcile import reconcile_plan

        plan = reconcile_plan(prepared.options)
        resources = observe_plan(plan, StepInputs(spec, self.engine.providers, settings,
                                                  names=entry.names))
        reasons: list[str] = []
        notes: list[str] = []  # what is no reason for a partial adoption, yet worth saying
        for r in resources:
            if r.state == "unknown":
                return AdoptionResult(slug, "refused", (
                    f"{r.resource} ({r.provider}) could not be observed: {r.error}; nothing "
                    "was recorded, import it again once the provider answers",), resources)
            owner = (r.current or {}).get("owner") if r.step == "create_database" else None
            holder = owners.get(("login", str(owner))) if owner else None
            if holder is not None and holder != slug:
                return AdoptionResult(slug, "refused", (
                    f"{r.resource} is owned by login {owner!r}, recorded for tenant "
                    f"{holder!r}: it is that tenant's database",), resources)
            if r.state == "drifted" and {d.field for d in r.differences} == {"managed"}:
                notes.append(f"{r.resource} ({r.provider}) was made without tenantops' mark; "
                             f"the first reconcile adds it: tenantops reconcile {slug}")
            elif r.state in ("missing", "drifted"):
                reasons.append(_describe(r))
        by_step = {r.step: r for r in resources}
        secret, database = by_step.get("store_database_secret"), by_step.get("create_database")
        if (secret is not None and secret.state == "missing" and database is not None
                and database.state != "missing"):
            notes.append(
                f"the login's password is not in {secret.resource} ({secret.provider}): a "
                "reconcile makes a new one and sets the login's password to it. To keep the "
                "password the tenant's app uses, store it there before reconciling")
        return AdoptionResult(slug, "partial" if reasons else "adopted",
                              (*reasons, *notes), resources)

    def _record(self, entry: Entry, result: AdoptionResult, requested_by: str
                ) -> AdoptionResult:
        missing = [r.resource for r in result.resources if r.state == "missing"]
        drifted = [r.resource for r in result.resources if r.state == "drifted"]
        summary = {"outcome": result.outcome, "missing": missing, "drifted": drifted}
        try:
            prepared = prepare_adoption(
                entry.spec, entry.names, self.engine.settings, suspended=entry.suspended,
                outputs=_outputs(result.resources, entry.names), summary=summary)
            run = self.engine.open_prepared(prepared, requested_by=requested_by)
        except DomainConflictError as exc:
            return AdoptionResult(result.slug, "refused", (str(exc.naming_holder()),),
                                  result.resources)
        except TenantOpsError as exc:  # taken meanwhile by a concurrent import or onboarding
            return AdoptionResult(result.slug, "refused", (str(exc),), result.resources)
        return AdoptionResult(result.slug, result.outcome, result.reasons, result.resources,
                              run.id, recorded=True)
