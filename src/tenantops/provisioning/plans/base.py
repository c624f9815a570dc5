"""What every plan is made of: steps as data, the inputs a step's resource is built from,
and previews.

A plan is data: each `PlanStep` names the provider kind, the verb (``ensure`` or ``remove``),
how to build its resource from the spec and earlier steps' outputs, which tenant fields its
resource reads (so an update knows which steps a change touches), and which tenant outputs
the catalog records when it succeeds. The engine runs one durable step per plan step;
`preview` asks each provider what it would create, change or delete.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tenantops.catalog import RunKind, StepTemplate, Tenant
from tenantops.config import Settings
from tenantops.errors import ProvisioningError
from tenantops.provisioning.providers.base import ProviderKind, Resource, Verb
from tenantops.provisioning.providers.catalog import DomainRetirement
from tenantops.provisioning.providers.dns import CustomerDomainRecords, DnsPropagation
from tenantops.provisioning.providers.registry import Providers
from tenantops.provisioning.spec import TenantSpec

__all__ = [
    "PLACEHOLDER",
    "Change",
    "ChangeAction",
    "OutputRecorder",
    "Plan",
    "PlanStep",
    "Preview",
    "ResourceBuilder",
    "ResourceNames",
    "StepInputs",
    "StepUndo",
    "differences",
    "preview",
]

ChangeAction = Literal["create", "update", "unchanged", "delete", "absent", "check"]
PLACEHOLDER = "<from "


@dataclass(frozen=True)
class ResourceNames:
    """Where a tenant's resources are when tenantops did not name them from its slug: the
    database, login and password secret of a tenant adopted with its own names
    (``tenantops import``), and the organization the tenant was recorded with (its ID lets a
    provider take over an adopted organization made without tenantops' mark). None: the
    name tenantops gives (``tenant_<slug>``, ``<slug>_app``, ``<slug>-database-password``).

    Read from the tenant's record (`of`): the outputs its runs, or its adoption, recorded."""

    database: str | None = None
    login: str | None = None
    secret: str | None = None
    organization_id: str | None = None

    @classmethod
    def of(cls, tenant: Tenant | None) -> ResourceNames:
        if tenant is None:
            return cls()
        return cls(tenant.database_name, tenant.database_login, tenant.database_secret,
                   tenant.organization_id)

    def to_json(self) -> dict[str, str | None]:
        return {"database": self.database, "login": self.login, "secret": self.secret,
                "organization_id": self.organization_id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ResourceNames:
        data = data or {}

        def text(key: str) -> str | None:
            value = data.get(key)
            return str(value) if value else None

        return cls(text("database"), text("login"), text("secret"), text("organization_id"))


@dataclass(frozen=True)
class StepInputs:
    """What a step's resource is built from: the spec, the providers (for the web host's
    identity), settings, the outputs of the run's earlier steps, where the tenant's
    resources are when not where its slug says (``names``), and the run's ID (what a
    placement records as the run that made a copy)."""

    spec: TenantSpec
    providers: Providers
    settings: Settings
    outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    previewing: bool = False
    names: ResourceNames = field(default_factory=ResourceNames)
    run_id: str = ""

    def output(self, step: str, key: str) -> str:
        """An earlier step's output; a placeholder while previewing (it has not run yet)."""
        value = self.outputs.get(step, {}).get(key)
        if value is None:
            if self.previewing:
                return f"{PLACEHOLDER}{step}>"
            raise ProvisioningError(
                f"step output {step}.{key} is missing; step {step!r} must succeed first"
            )
        return str(value)

    @property
    def slug_identifier(self) -> str:
        return self.spec.slug.replace("-", "_")


ResourceBuilder = Callable[[StepInputs], Resource]
OutputRecorder = Callable[[StepInputs, Mapping[str, Any]], dict[str, object]]


def _nothing(_inputs: StepInputs, _outputs: Mapping[str, Any]) -> dict[str, object]:
    return {}


@dataclass(frozen=True)
class StepUndo:
    """What a run that fails (or is cancelled) at a step puts back, so that the tenant is
    served as before the run: the resource ``build`` makes, ensured by the step's provider
    (``summary`` says what that does). Steps ``again_from`` up to the failed one are marked
    pending again, so a retry redoes their work instead of going on from a state the undo
    changed (a move's write freeze: a retry freezes again before it copies)."""

    build: ResourceBuilder
    summary: str
    again_from: str
    kind: ProviderKind = "database"


@dataclass(frozen=True)
class PlanStep:
    """One step: ``kind``'s provider does ``verb`` to the resource ``build`` makes.

    ``reads``: the tenant fields the resource is built from (``custom_domain``, ``plan``,
    ...); an update runs the onboarding steps that read a changed field. ``provider``: for a
    custom step (``kind`` ``custom``), the name it is declared under in ``[[steps]]``.
    ``undo``: what a failure at this step puts back (`StepUndo`)."""

    name: str
    kind: ProviderKind
    verb: Verb
    build: ResourceBuilder
    summary: str
    record: OutputRecorder = _nothing
    reads: frozenset[str] = frozenset()
    provider: str | None = None
    undo: StepUndo | None = None


@dataclass(frozen=True)
class Plan:
    kind: RunKind
    steps: tuple[PlanStep, ...]

    def step(self, name: str) -> PlanStep:
        for step in self.steps:
            if step.name == name:
                return step
        raise ProvisioningError(f"the {self.kind} plan has no step {name!r}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(step.name for step in self.steps)

    def templates(self, providers: Providers) -> list[StepTemplate]:
        """The steps as the catalog records them before they run."""
        return [StepTemplate(s.name, providers.for_step(s).label, s.verb) for s in self.steps]


# -- previews ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    """What one step would do to one resource."""

    step: str
    provider: str
    action: ChangeAction
    resource: str
    summary: str
    current: dict[str, Any] | None
    desired: dict[str, Any] | None
    differences: tuple[str, ...] = ()
    """For ``update``: the fields of ``desired`` that ``current`` holds otherwise."""

    def __str__(self) -> str:
        sign = {"create": "+", "update": "~", "delete": "-", "check": "?"}.get(self.action, " ")
        return f"{sign} {self.action:<9} {self.provider:<20} {self.resource}"


@dataclass(frozen=True)
class Preview:
    """A plan's effect, provider by provider, before anything runs; for a change of the
    tenant, ``diff`` says which fields change (field → ``{"from", "to"}``)."""

    kind: RunKind
    slug: str
    changes: tuple[Change, ...]
    diff: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def by_provider(self) -> dict[str, list[Change]]:
        grouped: dict[str, list[Change]] = {}
        for change in self.changes:
            grouped.setdefault(change.provider, []).append(change)
        return grouped

    def count(self, action: ChangeAction) -> int:
        return sum(1 for c in self.changes if c.action == action)

    def render(self) -> str:
        lines = [f"{self.kind} {self.slug}:"]
        for name, change in self.diff.items():
            lines.append(f"  {name}: {change.get('from')!r} -> {change.get('to')!r}")
        lines += [f"  {change}" for change in self.changes]
        lines.append(
            f"  {self.count('create')} to create, {self.count('update')} to update, "
            f"{self.count('delete')} to delete, {self.count('unchanged')} unchanged"
        )
        return "\n".join(lines)


def _comparable(value: Any) -> Any:
    """Lists and tuples compare as sorted lists (a provider may list domains in its own
    order), mappings key by key."""
    if isinstance(value, (list, tuple)):
        items = [_comparable(v) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, Mapping):
        return {str(k): _comparable(v) for k, v in value.items()}
    return value


def differences(desired: Mapping[str, Any], current: Mapping[str, Any]) -> tuple[str, ...]:
    """The fields of ``desired`` that ``current`` holds with another value; a field the
    provider does not report, and a placeholder for an earlier step's output, is no
    difference."""
    return tuple(
        key for key, value in desired.items()
        if key in current and not (isinstance(value, str) and value.startswith(PLACEHOLDER))
        and _comparable(current[key]) != _comparable(value)
    )


def preview(plan: Plan, inputs: StepInputs, *,
            diff: Mapping[str, Mapping[str, Any]] | None = None) -> Preview:
    """Ask each provider what exists and say what the plan would create, update or delete.
    Reads only; nothing is changed. A provider that cannot tell (a command step that does
    not observe) shows ``check``."""
    inputs = StepInputs(inputs.spec, inputs.providers, inputs.settings, inputs.outputs,
                        previewing=True, names=inputs.names)
    changes: list[Change] = []
    for step in plan.steps:
        resource = step.build(inputs)
        provider = inputs.providers.for_step(step)
        desired = resource.desired()
        action: ChangeAction
        current = None
        differing: tuple[str, ...] = ()
        waits = (DnsPropagation, CustomerDomainRecords, DomainRetirement)
        if (isinstance(resource, waits) and step.verb == "ensure") or not (
                provider.observes(resource)):
            action = "check"
        else:
            current = provider.observe(resource)
            if step.verb == "remove":
                action = "delete" if current is not None else "absent"
            elif current is None:
                action = "create"
            else:
                differing = differences(desired, current)
                action = "update" if differing else "unchanged"
        changes.append(Change(step.name, provider.label, action, resource.key, step.summary,
                              current, desired if step.verb == "ensure" else None, differing))
    return Preview(plan.kind, inputs.spec.slug, tuple(changes), dict(diff or {}))
