"""Plans: the ordered steps that onboard a tenant, and the reverse that offboards it.

A plan is data: each `PlanStep` names the provider kind, the verb (``ensure`` or ``remove``),
how to build its resource from the spec and earlier steps' outputs, and which tenant
outputs the catalog records when it succeeds. The engine runs one durable step per plan
step; `preview` asks each provider what it would create, change or delete.

A run's plan follows from its kind and options alone (`plan_for`), so a replayed run gets the
same plan. `onboarding_options` fixes, when the run is opened, which kind of custom domain the
tenant has (`tenantops.provisioning.domains`): a domain in the platform's zones gets its DNS
records written; a customer-managed domain gets a step that waits until the customer has
published the records the options list.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tenantops.catalog import RunKind, StepTemplate
from tenantops.config import Settings
from tenantops.errors import ProvisioningError
from tenantops.provisioning.domains import (
    WAIT_STEP,
    DomainRules,
    customer_records,
    domain_kind_of,
    new_verification_token,
)
from tenantops.provisioning.providers.base import ProviderKind, Resource, Verb
from tenantops.provisioning.providers.catalog import TenantActivation, TenantRegistration
from tenantops.provisioning.providers.database import Database
from tenantops.provisioning.providers.dns import CustomerDomainRecords, DnsPropagation, DnsRecord
from tenantops.provisioning.providers.organization import (
    OrganizationInvitation,
    TenantOrganization,
)
from tenantops.provisioning.providers.registry import Providers
from tenantops.provisioning.providers.secrets import Secret
from tenantops.provisioning.providers.webhost import Certificate, HostnameBinding, SniBinding
from tenantops.provisioning.spec import TenantSpec

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

ChangeAction = Literal["create", "update", "unchanged", "delete", "absent", "check"]
_PLACEHOLDER = "<from "


@dataclass(frozen=True)
class StepInputs:
    """What a step's resource is built from: the spec, the providers (for the web host's
    identity), settings, and the outputs of the run's earlier steps."""

    spec: TenantSpec
    providers: Providers
    settings: Settings
    outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    previewing: bool = False

    def output(self, step: str, key: str) -> str:
        """An earlier step's output; a placeholder while previewing (it has not run yet)."""
        value = self.outputs.get(step, {}).get(key)
        if value is None:
            if self.previewing:
                return f"{_PLACEHOLDER}{step}>"
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
class PlanStep:
    name: str
    kind: ProviderKind
    verb: Verb
    build: ResourceBuilder
    summary: str
    record: OutputRecorder = _nothing


@dataclass(frozen=True)
class Plan:
    kind: RunKind
    steps: tuple[PlanStep, ...]

    def step(self, name: str) -> PlanStep:
        for step in self.steps:
            if step.name == name:
                return step
        raise ProvisioningError(f"the {self.kind} plan has no step {name!r}")

    def templates(self, providers: Providers) -> list[StepTemplate]:
        """The steps as the catalog records them before they run."""
        return [
            StepTemplate(s.name, providers.of_kind(s.kind).label, s.verb) for s in self.steps
        ]


# -- resources, built the same way for onboarding, offboarding and previews ------------

def _secret(i: StepInputs) -> Resource:
    return Secret(f"{i.spec.slug}-database-password")


def _database(i: StepInputs) -> Resource:
    return Database(f"tenant_{i.slug_identifier}", f"{i.slug_identifier}_app",
                    f"{i.spec.slug}-database-password")


def _cname(i: StepInputs) -> DnsRecord:
    return DnsRecord(i.spec.custom_domain, "CNAME",
                     i.providers.webhost.site().default_hostname, i.settings.providers.dns.ttl,
                     zone=i.spec.parent_domain)


def _verification(i: StepInputs) -> DnsRecord:
    return DnsRecord(f"asuid.{i.spec.custom_domain}", "TXT",
                     i.providers.webhost.site().verification_id, i.settings.providers.dns.ttl,
                     zone=i.spec.parent_domain)


def _organization(i: StepInputs) -> Resource:
    path = i.settings.providers.organization.redirect_path
    return TenantOrganization(
        alias=i.spec.slug, name=i.spec.display_name, domains=(i.spec.custom_domain,),
        redirect_url=f"https://{i.spec.custom_domain}{path}",
    )


def _record_database(_i: StepInputs, o: Mapping[str, Any]) -> dict[str, object]:
    return {"database_name": o["database"], "database_login": o["login"],
            "database_secret": o["secret"]}


def _record_dns(record: Callable[[StepInputs], DnsRecord], *, removed: bool = False
                ) -> OutputRecorder:
    def recorder(i: StepInputs, _o: Mapping[str, Any]) -> dict[str, object]:
        r = record(i)
        return {"dns_records": {f"{r.type} {r.name}": None if removed else r.value}}
    return recorder


def _record_certificate(_i: StepInputs, o: Mapping[str, Any]) -> dict[str, object]:
    return {"certificate_thumbprint": o["thumbprint"],
            "certificate_expires_at": dt.datetime.fromisoformat(o["expires_at"])}


def _cleared(*columns: str) -> OutputRecorder:
    return lambda _i, _o: dict.fromkeys(columns)


_REGISTER = PlanStep(
    "register_tenant", "catalog", "ensure", lambda i: TenantRegistration(i.spec.slug),
    "register the tenant's configuration record")
_SECRET = PlanStep(
    "store_database_secret", "secrets", "ensure", _secret,
    "generate the database login's password and keep it in the secrets provider")
_DATABASE = PlanStep(
    "create_database", "database", "ensure", _database,
    "create the tenant database and its login", _record_database)
_CNAME = PlanStep(
    "create_cname_record", "dns", "ensure", _cname,
    "CNAME <custom domain> -> the web host's default hostname", _record_dns(_cname))
_TXT = PlanStep(
    "create_verification_record", "dns", "ensure", _verification,
    "TXT asuid.<custom domain> = the web host's verification ID", _record_dns(_verification))
_WAIT_DNS = PlanStep(
    "wait_for_dns", "dns", "ensure", lambda i: DnsPropagation((_cname(i), _verification(i))),
    "wait until the authoritative servers answer both records")
_BIND_HOST = PlanStep(
    "bind_hostname", "webhost", "ensure",
    lambda i: HostnameBinding(i.spec.custom_domain, i.spec.slug),
    "bind the custom hostname to the web host (checks the asuid record)",
    lambda i, _o: {"hostname": i.spec.custom_domain})
_ISSUE_CERT = PlanStep(
    "issue_certificate", "webhost", "ensure", lambda i: Certificate(i.spec.custom_domain),
    "issue a certificate for the custom hostname (pending until issued)", _record_certificate)
_BIND_CERT = PlanStep(
    "bind_certificate", "webhost", "ensure",
    lambda i: SniBinding(i.spec.custom_domain, i.output("issue_certificate", "thumbprint")),
    "serve the hostname with its certificate (SNI)")
_ORGANIZATION = PlanStep(
    "create_organization", "organization", "ensure", _organization,
    "create the organization with the custom domain and redirect URL",
    lambda _i, o: {"organization_id": o["organization_id"]})
_INVITE = PlanStep(
    "invite_admin", "organization", "ensure",
    lambda i: OrganizationInvitation(i.spec.slug, i.spec.admin_email, "admin"),
    "invite the tenant's first administrator")
_ACTIVATE = PlanStep(
    "activate_tenant", "catalog", "ensure", lambda i: TenantActivation(i.spec.slug),
    "mark the tenant active")

_ONBOARDING = Plan("onboard", (
    _REGISTER, _SECRET, _DATABASE, _CNAME, _TXT, _WAIT_DNS, _BIND_HOST, _ISSUE_CERT,
    _BIND_CERT, _ORGANIZATION, _INVITE, _ACTIVATE,
))


def onboarding_plan() -> Plan:
    """For a domain in a platform zone: register, secret, database, DNS (CNAME + asuid TXT),
    wait for DNS, bind hostname, issue certificate, bind it (SNI), organization, admin
    invitation, activate."""
    return _ONBOARDING


def customer_onboarding_plan(records: Sequence[Mapping[str, str]]) -> Plan:
    """For a customer-managed domain: as `onboarding_plan`, but instead of writing DNS records
    the run waits until the customer's authoritative servers answer ``records`` (from the
    run's options), and only then binds the hostname and issues its certificate."""
    wanted = tuple((str(r["type"]), str(r["name"]), str(r["value"])) for r in records)
    domain = wanted[0][1] if wanted else ""

    def build(i: StepInputs) -> Resource:
        ttl = i.settings.providers.dns.ttl
        found = tuple(DnsRecord(name, record_type, value, ttl)  # type: ignore[arg-type]
                      for record_type, name, value in wanted)
        return CustomerDomainRecords(
            i.spec.custom_domain, found, i.settings.domains.customer_poll_seconds,
            i.settings.domains.customer_wait_seconds)

    if domain and any(name != domain and not name.endswith(f".{domain}")
                      for _, name, _ in wanted):
        raise ProvisioningError(
            f"the run's customer_records name records outside {domain}; the run's options "
            "were changed by hand or are damaged")
    wait = PlanStep(
        WAIT_STEP, "dns", "ensure", build,
        "wait until the customer's authoritative servers answer the CNAME and TXT records "
        "the customer publishes (customer-managed domain)")
    steps = [wait if s is _CNAME else s for s in _ONBOARDING.steps
             if s not in (_TXT, _WAIT_DNS)]
    return Plan("onboard", tuple(steps))


def onboarding_options(spec: TenantSpec, settings: Settings, providers: Providers, *,
                       previewing: bool = False) -> dict[str, Any]:
    """The options an onboarding run is opened with: the kind of its custom domain and, for a
    customer-managed one, the records its customer publishes (with a verification token made
    for this registration). Checks the domain rules first (`SpecError` on a broken one).
    Reads the web host's identity (default hostname, verification ID) for a customer domain."""
    rules = DomainRules.from_settings(settings)
    rules.check(spec.custom_domain)
    kind = rules.kind_of(spec.custom_domain)
    if kind == "platform":
        return {"domain_kind": "platform"}
    site = providers.webhost.site()
    token = "<made when the run is opened>" if previewing else new_verification_token()
    return {"domain_kind": "customer", "customer_records": customer_records(
        spec.custom_domain, default_hostname=site.default_hostname,
        verification_id=site.verification_id, token=token)}


def offboarding_plan(*, keep_database: bool = False) -> Plan:
    """The onboarding undone in reverse; ``keep_database`` keeps the database and its secret."""
    steps = [
        PlanStep("deactivate_tenant", "catalog", "remove",
                 lambda i: TenantActivation(i.spec.slug), "mark the tenant as offboarding"),
        PlanStep("remove_organization", "organization", "remove", _organization,
                 "delete the organization with its domains, members and invitations",
                 _cleared("organization_id")),
        PlanStep("unbind_certificate", "webhost", "remove",
                 lambda i: SniBinding(i.spec.custom_domain, ""),
                 "stop serving the hostname with its certificate"),
        PlanStep("delete_certificate", "webhost", "remove",
                 lambda i: Certificate(i.spec.custom_domain), "delete the certificate",
                 _cleared("certificate_thumbprint", "certificate_expires_at")),
        PlanStep("unbind_hostname", "webhost", "remove",
                 lambda i: HostnameBinding(i.spec.custom_domain, i.spec.slug),
                 "remove the custom hostname from the web host", _cleared("hostname")),
        PlanStep("delete_verification_record", "dns", "remove", _verification,
                 "delete TXT asuid.<custom domain>", _record_dns(_verification, removed=True)),
        PlanStep("delete_cname_record", "dns", "remove", _cname,
                 "delete CNAME <custom domain>", _record_dns(_cname, removed=True)),
    ]
    if not keep_database:
        steps += [
            PlanStep("drop_database", "database", "remove", _database,
                     "drop the tenant database and its login",
                     _cleared("database_name", "database_login", "database_secret")),
            PlanStep("delete_database_secret", "secrets", "remove", _secret,
                     "delete the database login's password"),
        ]
    steps.append(PlanStep("deregister_tenant", "catalog", "remove",
                          lambda i: TenantRegistration(i.spec.slug),
                          "deregister the tenant (its record stays as history)"))
    return Plan("offboard", tuple(steps))


def plan_for(kind: RunKind, options: Mapping[str, Any]) -> Plan:
    """The plan a run of ``kind`` with ``options`` follows (deterministic: replays agree)."""
    if kind == "onboard":
        if domain_kind_of(options) == "customer":
            return customer_onboarding_plan(options.get("customer_records", []))
        return onboarding_plan()
    return offboarding_plan(keep_database=bool(options.get("keep_database", False)))


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

    def __str__(self) -> str:
        sign = {"create": "+", "update": "~", "delete": "-", "check": "?"}.get(self.action, " ")
        return f"{sign} {self.action:<9} {self.provider:<20} {self.resource}"


@dataclass(frozen=True)
class Preview:
    """A plan's effect, provider by provider, before anything runs."""

    kind: RunKind
    slug: str
    changes: tuple[Change, ...]

    def by_provider(self) -> dict[str, list[Change]]:
        grouped: dict[str, list[Change]] = {}
        for change in self.changes:
            grouped.setdefault(change.provider, []).append(change)
        return grouped

    def count(self, action: ChangeAction) -> int:
        return sum(1 for c in self.changes if c.action == action)

    def render(self) -> str:
        lines = [f"{self.kind} {self.slug}:"]
        lines += [f"  {change}" for change in self.changes]
        lines.append(
            f"  {self.count('create')} to create, {self.count('update')} to update, "
            f"{self.count('delete')} to delete, {self.count('unchanged')} unchanged"
        )
        return "\n".join(lines)


def _differs(desired: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    return any(
        key in current and current[key] != value
        for key, value in desired.items()
        if not (isinstance(value, str) and value.startswith(_PLACEHOLDER))
    )


def preview(plan: Plan, inputs: StepInputs) -> Preview:
    """Ask each provider what exists and say what the plan would create, update or delete.
    Reads only; nothing is changed."""
    inputs = StepInputs(inputs.spec, inputs.providers, inputs.settings, inputs.outputs,
                        previewing=True)
    changes: list[Change] = []
    for step in plan.steps:
        resource = step.build(inputs)
        provider = inputs.providers.of_kind(step.kind)
        desired = resource.desired()
        current = provider.observe(resource)
        action: ChangeAction
        if isinstance(resource, (DnsPropagation, CustomerDomainRecords)):
            action = "check"
        elif step.verb == "remove":
            action = "delete" if current is not None else "absent"
        elif current is None:
            action = "create"
        else:
            action = "update" if _differs(desired, current) else "unchanged"
        changes.append(Change(step.name, provider.label, action, resource.key, step.summary,
                              current, desired if step.verb == "ensure" else None))
    return Preview(plan.kind, inputs.spec.slug, tuple(changes))
