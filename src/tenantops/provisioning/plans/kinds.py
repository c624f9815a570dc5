"""`plan_for`: the plan a run of each kind follows, from the run's kind and options alone
(deterministic: a replayed run, or one retried after the settings changed, gets the same
plan)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tenantops.catalog import RunKind
from tenantops.errors import ProvisioningError
from tenantops.provisioning.plans.base import Plan
from tenantops.provisioning.plans.changes import resume_plan, suspend_plan, update_plan
from tenantops.provisioning.plans.custom import with_custom_steps
from tenantops.provisioning.plans.onboarding import (
    RetiringName,
    State,
    offboarding_plan,
    steps_for_domain,
)
from tenantops.provisioning.plans.reconcile import adoption_plan, reconcile_plan, reconcile_state
from tenantops.provisioning.plans.upkeep import (
    migration_plan,
    renewal_plan,
    rotation_plan,
    with_schema,
)

__all__ = ["plan_for"]


def plan_for(kind: RunKind | str, options: Mapping[str, Any]) -> Plan:
    """The plan a run of ``kind`` with ``options`` follows, custom steps included."""
    retiring = RetiringName.parse(options)
    if kind == "onboard":
        plan = Plan("onboard", with_schema(steps_for_domain(options), options))
        state = State()
    elif kind == "offboard":
        plan = offboarding_plan(keep_database=bool(options.get("keep_database", False)),
                                retiring=retiring, placement=options.get("placement"),
                                other_copies=options.get("other_copies") or ())
        state = State()
    elif kind == "update":
        plan = update_plan(options)
        state = State(bool(options.get("suspended")))
    elif kind == "suspend":
        plan, state = suspend_plan(options), State(True)
    elif kind == "resume":
        plan, state = resume_plan(options), State(False)
    elif kind == "reconcile":
        plan, state = reconcile_plan(options), reconcile_state(options)
    elif kind == "adopt":
        return adoption_plan()
    elif kind == "migrate":
        return migration_plan(options)
    elif kind == "rotate":
        return rotation_plan(options)
    elif kind == "renew":
        return renewal_plan(options)
    else:
        raise ProvisioningError(f"no plan for runs of kind {kind!r}; the catalog holds a run "
                                "this version of tenantops does not know")
    return with_custom_steps(plan, options, state)
