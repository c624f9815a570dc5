"""Reconcile and adopt: the recorded state of a tenant, and the run that restores it.

**The recorded state** of a tenant is what its onboarding made, with its current fields and
its suspended state: its database and login (and the login's password secret), the DNS
records tenantops writes for a platform domain, its hostname binding, certificate and SNI
binding, and its organization; custom steps that run in ``reconcile`` too. It is
`reconcile_plan`: a drift check previews it (what each provider would create or update is
what has drifted or gone), and a reconcile run executes it, converging every resource back.
Steps that only record the tenant in the catalog, the wait for a customer's DNS records
(the customer's, not tenantops'), and the administrator's invitation (a message sent once,
not a standing resource) are left out.

**Adopt** is the run an import records: the tenant was made before tenantops, and its
adoption only records it, with what was found (`adoption_plan`, one catalog step, done when
the run opens).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tenantops.provisioning.plans.base import Plan, PlanStep
from tenantops.provisioning.plans.onboarding import RetiringName, State, steps_for_domain
from tenantops.provisioning.providers.catalog import TenantRegistration

__all__ = ["RECONCILED_STEPS", "adoption_plan", "reconcile_plan", "reconcile_state"]

RECONCILED_STEPS: tuple[str, ...] = (
    "store_database_secret", "create_database", "create_cname_record",
    "create_verification_record", "wait_for_dns", "bind_hostname", "issue_certificate",
    "bind_certificate", "create_organization",
)
"""The onboarding steps whose resources make a tenant's recorded state, in their order."""


def reconcile_state(options: Mapping[str, Any]) -> State:
    """The state a reconcile restores: suspended or not, and the names the tenant still
    serves (its organization keeps them)."""
    return State(bool(options.get("suspended")),
                 tuple(r.domain for r in RetiringName.parse(options)))


def reconcile_plan(options: Mapping[str, Any]) -> Plan:
    """Converge every resource of the recorded state (see the module docstring), for the
    kind of domain the options say."""
    steps = steps_for_domain(options, reconcile_state(options))
    return Plan("reconcile", tuple(s for s in steps if s.name in RECONCILED_STEPS))


def adoption_plan() -> Plan:
    """What an adoption run shows: the tenant recorded, with what was found."""
    return Plan("adopt", (
        PlanStep("adopt_tenant", "catalog", "ensure", lambda i: TenantRegistration(i.spec.slug),
                 "record the tenant made before tenantops, and what was found of its "
                 "resources"),
    ))
