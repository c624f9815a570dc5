"""The plans, under the name callers have imported them by: they live in
`tenantops.provisioning.plans` (one module per concern) since plans of more kinds joined
onboarding and offboarding."""

from __future__ import annotations

from tenantops.provisioning.plans import (
    Change,
    ChangeAction,
    Plan,
    PlanStep,
    Preview,
    StepInputs,
    customer_onboarding_plan,
    offboarding_plan,
    onboarding_options,
    onboarding_plan,
    plan_for,
    preview,
)

__all__ = [
    "Change",
    "ChangeAction",
    "Plan",
    "PlanStep",
    "Preview",
    "StepInputs",
    "customer_onboarding_plan",
    "offboarding_plan",
    "onboarding_options",
    "onboarding_plan",
    "plan_for",
    "preview",
]
