"""Custom steps in plans: where each declared step (``[[steps]]`` in the settings) goes.

A custom step names a built-in onboarding step (or another custom step) it runs ``before``
or ``after``. Those anchors make one order of every step, built-in and custom
(`onboarding_order`): each built-in step with the custom steps anchored to it around it,
in declaration order. Each plan takes its place from that order:

- onboarding and resumption follow it, updates too (a custom step runs after the last step
  of the plan that comes before it in the order, or first);
- offboarding and suspension follow it backwards, each built-in step standing for the step
  that undoes it (``create_database`` for ``drop_database``): a step placed after
  ``create_database`` in onboarding runs before ``drop_database`` in offboarding.

A step runs in the kinds of run its ``runs_in`` lists. In offboarding it is removed (its
``remove``, as step ``remove_<name>``); in the others it is ensured. Which custom steps a run
has, and where, is fixed in the run's options when it is opened (``custom_steps``), so a
replay gets the same plan whatever the settings say later; the code that runs each one comes
from the settings when the step runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tenantops.errors import ConfigError, ProvisioningError
from tenantops.provisioning.domains import WAIT_STEP
from tenantops.provisioning.plans.base import Plan, PlanStep, StepInputs
from tenantops.provisioning.plans.onboarding import (
    OFFBOARDING_COUNTERPARTS,
    ONBOARDING_STEPS,
    State,
)
from tenantops.provisioning.providers.base import Resource, Verb

__all__ = [
    "CustomStepResource",
    "Declared",
    "declared_steps",
    "onboarding_order",
    "with_custom_steps",
]

# The built-in order custom steps are placed in: the wait for a customer's records stands
# where the platform's DNS records are written.
_BUILTIN_ORDER: tuple[str, ...] = tuple(
    name for step in ONBOARDING_STEPS if step != WAIT_STEP
    for name in ((WAIT_STEP, step) if step == "create_cname_record" else (step,)))

_SUSPEND_COUNTERPARTS = {"bind_hostname": "suspend_hostname",
                         "create_organization": "disable_organization",
                         "create_database": "disable_database_login"}
_RESUME_COUNTERPARTS = {"create_database": "enable_database_login",
                        "create_organization": "enable_organization",
                        "bind_hostname": "resume_hostname"}


@dataclass(frozen=True)
class Declared:
    """A custom step as a run's options record it: its name, anchor, description and the
    kinds of run it runs in (every declared step is recorded: they all take part in the
    order, whichever run in this kind)."""

    name: str
    before: str | None
    after: str | None
    summary: str
    runs_in: tuple[str, ...]

    def options(self) -> dict[str, Any]:
        return {"name": self.name, "before": self.before, "after": self.after,
                "summary": self.summary, "runs_in": list(self.runs_in)}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Declared:
        return cls(str(data["name"]), data.get("before"), data.get("after"),
                   str(data.get("summary") or ""),
                   tuple(str(k) for k in data.get("runs_in") or ()))


def declared_steps(options: Mapping[str, Any]) -> tuple[Declared, ...]:
    return tuple(Declared.parse(d) for d in options.get("custom_steps") or [])


def onboarding_order(declared: Sequence[Declared], *, where: str = "steps") -> tuple[str, ...]:
    """Every step name, built-in and custom, in onboarding order. Raises `ConfigError`
    naming the setting (``steps[2].after``) for an anchor that names no step, a step that
    names itself, and anchors that make a cycle."""
    names = {d.name: index for index, d in enumerate(declared)}
    before: dict[str, list[str]] = {}
    after: dict[str, list[str]] = {}
    for index, step in enumerate(declared):
        field, anchor = ("before", step.before) if step.before else ("after", step.after)
        if not anchor:
            raise ConfigError(
                f"{where}[{index}] ({step.name}): set before or after to the step it runs "
                f"beside (one of {', '.join(_BUILTIN_ORDER)}, or another custom step)")
        if anchor == step.name:
            raise ConfigError(f"{where}[{index}].{field} = {anchor!r}: a step cannot run "
                              f"{field} itself")
        if anchor not in names and anchor not in _BUILTIN_ORDER:
            raise ConfigError(
                f"{where}[{index}].{field} = {anchor!r} names no step: use one of "
                f"{', '.join(_BUILTIN_ORDER)}, or another custom step's name")
        (before if field == "before" else after).setdefault(anchor, []).append(step.name)

    order: list[str] = []
    placed: set[str] = set()

    def expand(name: str) -> None:
        for earlier in before.get(name, []):
            expand(earlier)
        order.append(name)
        placed.add(name)
        for later in after.get(name, []):
            expand(later)

    for name in _BUILTIN_ORDER:
        expand(name)
    stranded = [d for d in declared if d.name not in placed]
    if stranded:
        cycle = " -> ".join(f"{d.name} ({'before' if d.before else 'after'} "
                            f"{d.before or d.after})" for d in stranded)
        first = names[stranded[0].name]
        raise ConfigError(
            f"{where}[{first}]: the custom steps' before/after make a cycle ({cycle}); "
            "anchor one of them to a built-in step")
    return tuple(order)


@dataclass(frozen=True)
class CustomStepResource(Resource):
    """What a custom step works on: the tenant (its fields and the state its suspendable
    resources should be in) and the outputs of the run's earlier steps."""

    step: str
    run_kind: str
    tenant: dict[str, Any]
    suspended: bool
    outputs: dict[str, dict[str, Any]]

    @property
    def key(self) -> str:
        return f"step:{self.step}:{self.tenant.get('slug', '')}"

    def desired(self) -> dict[str, Any]:
        return {"tenant": dict(self.tenant), "suspended": self.suspended}


def _custom(declared: Declared, kind: str, state: State, *, removing: bool) -> PlanStep:
    def build(i: StepInputs) -> Resource:
        return CustomStepResource(
            declared.name, kind, i.spec.model_dump(mode="json"), state.suspended,
            {name: dict(values) for name, values in i.outputs.items()})

    verb: Verb = "remove" if removing else "ensure"
    name = f"remove_{declared.name}" if removing else declared.name
    summary = declared.summary or f"custom step {declared.name} ({verb})"
    return PlanStep(name, "custom", verb, build, summary, provider=declared.name)


def with_custom_steps(plan: Plan, options: Mapping[str, Any], state: State) -> Plan:
    """``plan`` with the custom steps its run's options declare, each in its place."""
    declared = declared_steps(options)
    if not declared:
        return plan
    try:
        order = onboarding_order(declared, where="custom_steps")
    except ConfigError as exc:
        raise ProvisioningError(
            f"the run's custom_steps cannot be placed ({exc}); the run's options were "
            "changed by hand or are damaged") from None
    removing = plan.kind == "offboard"
    if plan.kind in ("offboard", "suspend"):
        counterparts = OFFBOARDING_COUNTERPARTS if removing else _SUSPEND_COUNTERPARTS
        order = tuple(counterparts.get(name, name) for name in reversed(order))
    elif plan.kind == "resume":
        order = tuple(_RESUME_COUNTERPARTS.get(name, name) for name in order)
    customs = {d.name: _custom(d, plan.kind, state, removing=removing) for d in declared
               if plan.kind in d.runs_in}
    steps = list(plan.steps)
    for position, name in enumerate(order):
        if name not in customs:
            continue
        at = 0
        for earlier in reversed(order[:position]):
            present = [i for i, s in enumerate(steps)
                       if s.name == earlier or (earlier in customs and s.provider == earlier)]
            if present:
                at = present[0] + 1
                break
        steps.insert(at, customs[name])
    return Plan(plan.kind, tuple(steps))
