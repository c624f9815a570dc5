"""Day-two plans: change a tenant (update), suspend it, resume it.

**Update.** The options say which fields change (``changes``: field → ``{"from", "to"}``). The
plan runs again, with the new values, the onboarding steps whose resources read a changed
field (`PlanStep.reads`): a new custom domain gets its records (or waits for its customer's),
binding, certificate and SNI binding, and the organization gains it, while the old name keeps
serving; a new administrator is invited (the previous one is removed only when asked); a new
plan runs the steps whose resources depend on the plan (the database today: the hook for
per-plan resources). Then, when names are being retired, the run waits out the grace period
(`DomainRetirement`, a durable wait that holds no worker slot), removes what served the old
names, drops them from the organization and releases them.

**Suspend / resume.** The resources with a suspended state are converged to it: the hostname
answers with a suspended page, the organization is disabled, the database login cannot sign
in. Nothing is deleted; resume converges them back, in reverse order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from tenantops.errors import ProvisioningError
from tenantops.provisioning.plans.base import Plan, PlanStep
from tenantops.provisioning.plans.moves import move_steps
from tenantops.provisioning.plans.onboarding import (
    RetiringName,
    State,
    database,
    hostname,
    organization,
    release_step,
    retirement_steps,
    steps_for_domain,
)
from tenantops.provisioning.providers.catalog import DomainRetirement, PlacementProfile
from tenantops.provisioning.providers.organization import OrganizationInvitation

__all__ = ["resume_plan", "suspend_plan", "update_plan"]

# Steps an update never runs again: they make the tenant's record, not its resources.
_NOT_RERUN = frozenset({"register_tenant", "activate_tenant"})


def _changed(options: Mapping[str, Any]) -> frozenset[str]:
    changes = options.get("changes")
    if not isinstance(changes, Mapping):
        raise ProvisioningError(
            "the update's options have no changes; the run's options were changed by hand or "
            "are damaged")
    return frozenset(str(name) for name in changes)


def update_plan(options: Mapping[str, Any]) -> Plan:
    """Converge what the changed fields touch, then retire the previous names (see the
    module docstring)."""
    changed = _changed(options)
    retiring = RetiringName.parse(options)
    state = State(bool(options.get("suspended")), tuple(r.domain for r in retiring))
    steps = [s for s in steps_for_domain(options, state)
             if s.name not in _NOT_RERUN and s.reads & changed]
    profile = options.get("profile_details")
    if isinstance(profile, Mapping):
        # A plan change that converges the database in place (an Azure SQL elastic pool):
        # once it is there, the record says so.
        after = next(n for n, s in enumerate(steps) if s.name == "create_database") + 1
        recorded = PlacementProfile(
            "", elastic_pool=profile.get("elastic_pool"), sku=profile.get("sku"))
        steps.insert(after, PlanStep(
            "record_database_profile", "catalog", "ensure",
            lambda i: dataclasses.replace(recorded, slug=i.spec.slug),
            "record the database profile of the new plan with the tenant's placement"))
    if "admin_email" in changed and options.get("remove_previous_admin"):
        previous = str(options["changes"]["admin_email"]["from"])
        steps.append(PlanStep(
            "remove_previous_admin", "organization", "remove",
            lambda i: OrganizationInvitation(i.spec.slug, previous, "admin"),
            f"remove the previous administrator {previous} (invitation or membership)"))
    if retiring:
        grace = float(options.get("grace_seconds", 0.0))
        domains = tuple(r.domain for r in retiring)
        steps.append(PlanStep(
            "wait_for_grace_period", "catalog", "ensure",
            lambda i: DomainRetirement(i.spec.slug, domains, grace),
            f"keep serving {', '.join(domains)} for the grace period ({grace:g} s), then go on"))
        steps += retirement_steps(retiring)
        steps.append(PlanStep(
            "drop_previous_organization_domains", "organization", "ensure",
            organization(State(state.suspended)),
            "the organization keeps only the tenant's custom domain"))
        steps.append(release_step(retiring, grace))
    if "move" in options:
        steps += move_steps(options)
    return Plan("update", tuple(steps))


def _hostnames(state: State) -> list[PlanStep]:
    verb = "suspend" if state.suspended else "resume"
    steps = [PlanStep(f"{verb}_hostname", "webhost", "ensure", hostname(state),
                      "answer the custom hostname with a suspended page" if state.suspended
                      else "serve the custom hostname with the tenant's app again")]
    for index, domain in enumerate(state.retiring):
        suffix = "" if index == 0 else f"_{index + 1}"
        steps.append(PlanStep(f"{verb}_previous_hostname{suffix}", "webhost", "ensure",
                              hostname(state, domain),
                              f"the same for {domain}, which the tenant still serves"))
    return steps


def suspend_plan(options: Mapping[str, Any]) -> Plan:
    """In offboarding's order: the organization is disabled, the hostnames answer a
    suspended page, the database login cannot sign in (its sessions are ended). Nothing is
    deleted."""
    state = State(True, tuple(r.domain for r in RetiringName.parse(options)))
    return Plan("suspend", (
        PlanStep("disable_organization", "organization", "ensure", organization(state),
                 "disable the organization: no member can sign in"),
        *_hostnames(state),
        PlanStep("disable_database_login", "database", "ensure",
                 database(state, options.get("placement")),
                 "the database login cannot sign in; its open sessions are ended"),
    ))


def resume_plan(options: Mapping[str, Any]) -> Plan:
    """The suspension undone, in onboarding's order: database login, hostnames,
    organization."""
    state = State(False, tuple(r.domain for r in RetiringName.parse(options)))
    return Plan("resume", (
        PlanStep("enable_database_login", "database", "ensure",
                 database(state, options.get("placement")),
                 "the database login can sign in again"),
        *_hostnames(state),
        PlanStep("enable_organization", "organization", "ensure", organization(state),
                 "enable the organization: members sign in again"),
    ))


def retiring_options(names: Sequence[RetiringName]) -> list[dict[str, str]]:
    return [{"domain": n.domain, "kind": n.kind} for n in names]
