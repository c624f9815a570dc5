"""Provisioning: tenant specs, plans, the durable engine and the providers it drives.

    spec = TenantSpec(slug="acme", display_name="Acme", custom_domain="portal.acme.test",
                      admin_email="admin@acme.test")
    with Engine(load_settings()) as engine:          # a worker: runs workflows
        print(engine.preview_onboarding(spec).render())
        run = engine.wait(engine.onboard(spec, requested_by="me").id)

Names are imported on first use, so ``from tenantops.provisioning import TenantSpec`` does
not load SQLAlchemy, dnspython or DBOS.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from tenantops.provisioning.spec import TenantSpec, normalize_hostname

if TYPE_CHECKING:
    from tenantops.provisioning.engine import (
        Engine,
        StepRef,
        current_step,
        system_database_url,
    )
    from tenantops.provisioning.plan import (
        Change,
        Plan,
        PlanStep,
        Preview,
        StepInputs,
        offboarding_plan,
        onboarding_plan,
        plan_for,
        preview,
    )
    from tenantops.provisioning.providers.registry import Providers, build_providers
    from tenantops.provisioning.run_requests import TenantChange

__all__ = [
    "Change",
    "Engine",
    "Plan",
    "PlanStep",
    "Preview",
    "Providers",
    "StepInputs",
    "StepRef",
    "TenantChange",
    "TenantSpec",
    "build_providers",
    "current_step",
    "normalize_hostname",
    "offboarding_plan",
    "onboarding_plan",
    "plan_for",
    "preview",
    "system_database_url",
]

_LAZY = {
    **dict.fromkeys(("Engine", "StepRef", "current_step", "system_database_url"), "engine"),
    **dict.fromkeys(("Change", "Plan", "PlanStep", "Preview", "StepInputs", "offboarding_plan",
                     "onboarding_plan", "plan_for", "preview"), "plan"),
    **dict.fromkeys(("Providers", "build_providers"), "providers.registry"),
    "TenantChange": "run_requests",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
