"""Upkeep plans: what a live tenant gets on release day and as time passes, each a run of
its own kind that leaves the tenant's status alone (`KindRules.keeps_status`).

**Rotate.** The tenant's database credentials change without downtime: two logins used in
turn (``<slug>_app``, the database's owner, and ``<slug>_app_b``, a member acting as it),
each with its own secret. A new password is made for the login not in use (a new version of
its secret), set on it, proven by signing in, and that login becomes the tenant's
(``database_login``, ``database_secret``); the previous one keeps working until no session
uses it (at least ``rotation.min_grace_seconds``, at most ``max_grace_seconds``), then it is
disabled. Options (``rotation``) are resolved when the run opens, so a retry converges to the
same logins. The run acts on the server the tenant's placement records (``rotation.server``)
and switches the tenant's connection URL secret to the new login (``connection_secret``).
A schema-mode tenant's two logins act as the owner of its schema in the pooled database
(``rotation.schema``), whose ``tenantops_meta`` records the login in use (docs/fleet.md).

**Renew.** The certificate of the tenant's custom domain is renewed if it still is the one
the run was opened for (``renewal``: hostname, thumbprint), then bound (SNI) and recorded
(``certificate_thumbprint``, ``certificate_expires_at``). On the local edge the edge's CA
issues a new one; App Service renews managed certificates itself, so the run follows the
thumbprint it has now and rebinds when the binding still names the old one.

**Migrate.** The SaaS's own schema in the tenant's database is brought to the revision the
run's options name (``schema``: the migrations folder, its kind, the revision, resolved when
the run was opened): one step, every pending revision in one transaction, the tenant's
``schema_revision`` recorded when it succeeds. The database is opened where the tenant's
placement says (the run's ``placement``; in an onboarding, the copy it placed). Onboarding
runs the same step right after ``create_database`` when migrations are configured
(`with_schema`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from tenantops.config import DEFAULT_SERVER
from tenantops.errors import ProvisioningError
from tenantops.provisioning.plans.base import Plan, PlanStep, StepInputs
from tenantops.provisioning.providers.base import Resource
from tenantops.provisioning.providers.database import (
    DatabaseLogin,
    DatabaseSchema,
    RetiredLogin,
)
from tenantops.provisioning.providers.secrets import ConnectionSecret, SecretVersion
from tenantops.provisioning.providers.webhost import CertificateRenewal, SniBinding

__all__ = ["MIGRATE_STEP", "ROTATION_KEYS", "migration_plan", "renewal_plan", "rotation_options",
           "rotation_plan", "schema_options", "with_schema"]

ROTATION_KEYS = ("database", "owner", "from_login", "to_login", "to_secret", "version",
                 "min_grace_seconds", "max_grace_seconds", "poll_seconds")

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
        where = _where(i, options)
        return DatabaseSchema(str(where.get("database") or f"tenant_{i.slug_identifier}"),
                              f"{i.slug_identifier}_app", schema["source"], schema["kind"],
                              schema["revision"],
                              server=str(where.get("server") or DEFAULT_SERVER),
                              schema=str(where["schema"]) if where.get("schema") else None)

    return PlanStep(
        MIGRATE_STEP, "database", "ensure", build,
        f"bring the tenant's schema to revision {schema['revision']} (every pending revision "
        "in one transaction)",
        lambda _i, o: {"schema_revision": o["revision"]})


def _where(i: StepInputs, options: Mapping[str, Any]) -> Mapping[str, Any]:
    """Where the tenant's data is: the run's ``placement`` (a migration), or the copy its
    onboarding placed (``database``: the plan's profile); empty for runs opened before
    placements were recorded (``tenant_<slug>`` on the server ``default``)."""
    if isinstance(options.get("placement"), Mapping):
        return dict(options["placement"])
    if isinstance(options.get("database"), Mapping):
        from tenantops.provisioning.plans.onboarding import PLACE_STEP, placed

        return placed(i, PLACE_STEP, options["database"])
    return {}


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


def rotation_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The run's ``rotation`` options; ``server``, ``schema`` and ``connection_secret``
    (where the tenant's placement is, its schema in the pooled database in schema mode, and
    its connection URL's secret) are absent from runs opened before they were recorded."""
    rotation = options.get("rotation")
    if not isinstance(rotation, Mapping) or not all(k in rotation for k in ROTATION_KEYS):
        raise ProvisioningError(
            "the run's options have no rotation (database, logins, secret, version, grace); "
            "the run's options were changed by hand or are damaged")
    return {k: rotation[k] for k in (*ROTATION_KEYS, "server", "schema", "connection_secret")
            if k in rotation}


def rotation_plan(options: Mapping[str, Any]) -> Plan:
    r = rotation_options(options)

    def secret(_i: StepInputs) -> Resource:
        return SecretVersion(str(r["to_secret"]), str(r["version"]))

    server = str(r.get("server") or DEFAULT_SERVER)
    schema = str(r["schema"]) if r.get("schema") else None

    def login(_i: StepInputs) -> Resource:
        return DatabaseLogin(str(r["database"]), str(r["owner"]), str(r["to_login"]),
                             str(r["to_secret"]), server=server, schema=schema)

    def retired(_i: StepInputs) -> Resource:
        return RetiredLogin(str(r["database"]), str(r["from_login"]),
                            float(r["min_grace_seconds"]), float(r["max_grace_seconds"]),
                            float(r["poll_seconds"]), server=server, schema=schema)

    connecting: tuple[PlanStep, ...] = ()
    if r.get("connection_secret"):
        name = str(r["connection_secret"])

        def connection(i: StepInputs) -> Resource:
            return ConnectionSecret(name, i.output("switch_database_login", "location"),
                                    str(r["to_login"]), str(r["to_secret"]))

        connecting = (PlanStep(
            "switch_connection_secret", "secrets", "ensure", connection,
            f"the tenant app's connection URL ({name}) names login {r['to_login']} and its "
            "new password"),)

    return Plan("rotate", (
        PlanStep("store_new_database_secret", "secrets", "ensure", secret,
                 f"a new password in secret {r['to_secret']} (a new version), for login "
                 f"{r['to_login']}, which no session uses"),
        PlanStep("switch_database_login", "database", "ensure", login,
                 f"set it on login {r['to_login']}, prove it signs in, make it the tenant's "
                 "login (the previous one keeps working)",
                 lambda _i, o: {"database_login": o["login"], "database_secret": o["secret"]}),
        *connecting,
        PlanStep("retire_previous_login", "database", "ensure", retired,
                 f"disable the previous login {r['from_login']} once no session uses it "
                 "(after the grace period)"),
    ))


def renewal_plan(options: Mapping[str, Any]) -> Plan:
    renewal = options.get("renewal")
    if not isinstance(renewal, Mapping) or not all(
            isinstance(renewal.get(k), str) for k in ("hostname", "thumbprint")):
        raise ProvisioningError(
            "the run's options have no renewal (hostname, thumbprint); the run's options were "
            "changed by hand or are damaged")
    hostname, thumbprint = str(renewal["hostname"]), str(renewal["thumbprint"])

    def record(_i: StepInputs, o: Mapping[str, Any]) -> dict[str, object]:
        expires = o.get("expires_at")
        return {"certificate_thumbprint": o["thumbprint"],
                "certificate_expires_at": dt.datetime.fromisoformat(expires) if expires
                else None}

    return Plan("renew", (
        PlanStep("renew_certificate", "webhost", "ensure",
                 lambda _i: CertificateRenewal(hostname, thumbprint),
                 f"renew the certificate of {hostname} if it still is {thumbprint[:12]}… "
                 "(App Service: follow the one it renewed itself)", record),
        PlanStep("bind_renewed_certificate", "webhost", "ensure",
                 lambda i: SniBinding(hostname, i.output("renew_certificate", "thumbprint")),
                 f"serve {hostname} with the renewed certificate (SNI)"),
    ))
