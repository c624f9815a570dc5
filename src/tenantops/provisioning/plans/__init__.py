"""Plans: the steps each kind of run takes, as data the engine executes.

- `base`: what a plan is made of (`PlanStep`, `Plan`, `StepInputs`) and previews;
- `onboarding`: onboarding and offboarding, whose steps the other plans reuse;
- `changes`: update, suspend and resume;
- `reconcile`: a tenant's recorded state, which reconcile runs restore and drift checks
  compare with, and the adoption of a tenant made before tenantops;
- `custom`: where the custom steps of the settings go in each plan;
- `kinds`: `plan_for`, the plan of a run from its kind and options.
"""

from __future__ import annotations

from tenantops.provisioning.plans.base import (
    Change,
    ChangeAction,
    Plan,
    PlanStep,
    Preview,
    ResourceNames,
    StepInputs,
    differences,
    preview,
)
from tenantops.provisioning.plans.changes import resume_plan, suspend_plan, update_plan
from tenantops.provisioning.plans.custom import (
    CustomStepResource,
    Declared,
    onboarding_order,
    with_custom_steps,
)
from tenantops.provisioning.plans.kinds import plan_for
from tenantops.provisioning.plans.onboarding import (
    OFFBOARDING_COUNTERPARTS,
    ONBOARDING_STEPS,
    RetiringName,
    State,
    customer_onboarding_plan,
    domain_options,
    offboarding_plan,
    onboarding_options,
    onboarding_plan,
)
from tenantops.provisioning.plans.reconcile import (
    RECONCILED_STEPS,
    adoption_plan,
    reconcile_plan,
    reconcile_state,
)

__all__ = [
    "OFFBOARDING_COUNTERPARTS",
    "ONBOARDING_STEPS",
    "RECONCILED_STEPS",
    "Change",
    "ChangeAction",
    "CustomStepResource",
    "Declared",
    "Plan",
    "PlanStep",
    "Preview",
    "ResourceNames",
    "RetiringName",
    "State",
    "StepInputs",
    "adoption_plan",
    "customer_onboarding_plan",
    "differences",
    "domain_options",
    "offboarding_plan",
    "onboarding_options",
    "onboarding_order",
    "onboarding_plan",
    "plan_for",
    "preview",
    "reconcile_plan",
    "reconcile_state",
    "resume_plan",
    "suspend_plan",
    "update_plan",
    "with_custom_steps",
]
