"""Upkeep plans: what a live tenant gets on release day and as time passes, each a run of
its own kind that leaves the tenant's status alone (`KindRules.keeps_status`).

**Migrate.** The SaaS's own schema in the tenant's database is brought to the revision the
run's options name (``schema``: the migrations folder, its kind, the revision, resolved when
the run was opened): one step, every pending revision in one transaction, the tenant's
``schema_revision`` recorded when it succeeds. Onboarding runs the same step right after
``create_database`` when migrations are configured (`with_schema`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tenantops.errors import ProvisioningError
from tenantops.provisioning.plans.base import Plan, PlanStep, StepInputs
from tenantops.provisioning.providers.base import Resource
from tenantops.provisioning.providers.database import DatabaseSchema

__all__ = ["MIGRATE_STEP", "migration_plan", "schema_options", "with_schema"]

MIGRATE_STEP = "migrate_schema"


def schema_options(options: Mapping[str, Any]) -> dict[str, str]:
    """The run's ``schema`` options: ``source``, ``kind``, ``revision``."""
    schema = options.get("schema")
    if not isinstance(schema, Mapping) or not all(
            isinstance(schema.get(k), str) for k in ("source", "kind", "revision")):
        raise ProvisioningError(
            "the run's options have no schema (source, kind, revision); the run's options "
            "were changed by hand or are damaged")
    return {k: str(schema[k]) for k in ("source", "kind", "revision")}


def _schema(options: Mapping[str, Any]) -> PlanStep:
    schema = schema_options(options)

    def build(i: StepInputs) -> Resource:
        return DatabaseSchema(f"tenant_{i.slug_identifier}", f"{i.slug_identifier}_app",
                              schema["source"], schema["kind"], schema["revision"])

    return PlanStep(
        MIGRATE_STEP, "database", "ensure", build,
        f"bring the tenant's schema to revision {schema['revision']} (every pending revision "
        "in one transaction)",
        lambda _i, o: {"schema_revision": o["revision"]})


def migration_plan(options: Mapping[str, Any]) -> Plan:
    return Plan("migrate", (_schema(options),))


def with_schema(steps: Sequence[PlanStep], options: Mapping[str, Any]) -> tuple[PlanStep, ...]:
    """Onboarding's steps, with ``migrate_schema`` after ``create_database`` when the run's
    options carry a schema."""
    if not options.get("schema"):
        return tuple(steps)
    placed: list[PlanStep] = []
    for step in steps:
        placed.append(step)
        if step.name == "create_database":
            placed.append(_schema(options))
    return tuple(placed)
