"""Onboarding and offboarding: the steps that make a tenant, and the reverse that removes it.

The onboarding steps are also the vocabulary of the other plans: an update runs again the
onboarding steps whose resources read a changed field (`ONBOARDING_STEPS`, `PlanStep.reads`),
a suspension the ones whose resources have a suspended state, and custom steps are placed
before or after them by name.

A run's plan follows from its kind and options alone (`tenantops.provisioning.plans.plan_for`),
so a replayed run gets the same plan. `onboarding_options` fixes, when the run is opened,
which kind of custom domain the tenant has (`tenantops.provisioning.domains`): a domain in the
platform's zones gets its DNS records written; a customer-managed domain gets a step that
waits until the customer has published the records the options list.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tenantops.catalog import choose_server
from tenantops.config import Settings
from tenantops.errors import PlacementError, ProvisioningError
from tenantops.provisioning.domains import (
    WAIT_STEP,
    DomainKind,
    DomainRules,
    customer_records,
    new_verification_token,
)
from tenantops.provisioning.placement import (
    connection_secret_of,
    database_of,
    login_of,
    password_secret_of,
    server_slots,
)
from tenantops.provisioning.plans.base import (
    PLACEHOLDER,
    OutputRecorder,
    Plan,
    PlanStep,
    StepInputs,
)
from tenantops.provisioning.providers.base import Resource
from tenantops.provisioning.providers.catalog import (
    DatabasePlacement,
    DomainRetirement,
    PlacementRecord,
    TenantActivation,
    TenantRegistration,
)
from tenantops.provisioning.providers.dns import CustomerDomainRecords, DnsPropagation, DnsRecord
from tenantops.provisioning.providers.organization import (
    OrganizationInvitation,
    TenantOrganization,
)
from tenantops.provisioning.providers.registry import Providers
from tenantops.provisioning.providers.secrets import ConnectionSecret, Secret
from tenantops.provisioning.providers.webhost import Certificate, HostnameBinding, SniBinding
from tenantops.provisioning.spec import TenantSpec

__all__ = [
    "OFFBOARDING_COUNTERPARTS",
    "ONBOARDING_STEPS",
    "PLACE_STEP",
    "RetiringName",
    "State",
    "customer_onboarding_plan",
    "domain_options",
    "offboarding_plan",
    "onboarding_options",
    "onboarding_plan",
    "onboarding_steps",
    "placed",
    "placement_step",
    "retirement_steps",
]


@dataclasses.dataclass(frozen=True)
class State:
    """The desired state of a tenant's suspendable resources, and the names it still serves
    besides its custom domain (which its organization keeps until they are removed)."""

    suspended: bool = False
    retiring: tuple[str, ...] = ()


ACTIVE = State()


@dataclasses.dataclass(frozen=True)
class RetiringName:
    """A name a tenant retires after a domain change, and its kind (whose DNS holds it)."""

    domain: str
    kind: DomainKind

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> tuple[RetiringName, ...]:
        return tuple(cls(str(r["domain"]), "customer" if r.get("kind") == "customer"
                         else "platform") for r in options.get("retiring_domains") or [])


# -- resources, built the same way for every plan and for previews -------------------------

def _secret_name(i: StepInputs) -> str:
    return i.names.secret or f"{i.spec.slug}-database-password"


def _secret(i: StepInputs) -> Resource:
    return Secret(_secret_name(i))


PLACE_STEP = "place_database"


def database(state: State, placement: Mapping[str, Any] | None = None
             ) -> Callable[[StepInputs], Resource]:
    """The tenant's data at ``placement`` (a run's options of its copy; None: where a
    tenant made before placements were recorded has it: ``tenant_<slug>`` on the server
    ``default``, or the names an adopted tenant was recorded with)."""
    def build(i: StepInputs) -> Resource:
        found = database_of(i.spec.slug, placement, login_enabled=not state.suspended)
        return dataclasses.replace(
            found, name=(i.names.database or found.name) if placement is None else found.name,
            login=i.names.login or found.login, secret=_secret_name(i))
    return build


def placed_database(state: State, profile: Mapping[str, Any]
                    ) -> Callable[[StepInputs], Resource]:
    """The tenant's data where the run's `place_database` step placed it (a preview,
    before that step ran, shows the profile's names on a server to be chosen)."""
    def build(i: StepInputs) -> Resource:
        return database_of(i.spec.slug, placed(i, PLACE_STEP, profile),
                           login_enabled=not state.suspended)
    return build


def placed(i: StepInputs, step: str, profile: Mapping[str, Any]) -> Mapping[str, Any]:
    """The copy step ``step`` placed (its outputs); while previewing, ``profile``'s."""
    found = i.outputs.get(step)
    if found is not None and found.get("server"):
        return found
    if i.previewing:
        return {**profile, "server": _likely_server(i, profile)}
    i.output(step, "server")  # raises: the step has not run
    return profile


def _likely_server(i: StepInputs, profile: Mapping[str, Any]) -> str:
    """The server a placement would choose now (a preview's guess: the run chooses when it
    runs); the pool's first server when none could take the copy (the run will say why)."""
    if profile.get("server") is not None:
        return str(profile["server"])
    pool = str(profile.get("pool") or "default")
    slots = server_slots(i.settings, pool)
    try:
        return choose_server(slots, i.providers.catalog.catalog.server_loads(),
                             pool=pool).name
    except PlacementError:
        return slots[0].name if slots else f"{PLACEHOLDER}place_database>"


def placement_step(profile: Mapping[str, Any], *, name: str = PLACE_STEP,
                   state: str = "current") -> PlanStep:
    """Choose the server of a copy of the tenant's data (``profile``: a run's options of
    it: pool, mode, names, a named server) and record it in the catalog."""
    def build(i: StepInputs) -> Resource:
        pool = str(profile["pool"])
        details = profile.get("details") or {}
        return DatabasePlacement(
            i.spec.slug, state, i.run_id, pool,
            "schema" if profile.get("mode") == "schema" else "database",
            str(profile["database"]),
            None if profile.get("schema") is None else str(profile["schema"]),
            server_slots(i.settings, pool),
            named=None if profile.get("server") is None else str(profile["server"]),
            elastic_pool=details.get("elastic_pool"), sku=details.get("sku"))
    where = (f"server {profile['server']}" if profile.get("server") is not None
             else f"the least-loaded server of pool {profile.get('pool')} with room")
    return PlanStep(name, "catalog", "ensure", build,
                    f"place the tenant's data ({profile.get('mode')} mode) on {where}, and "
                    "record it")


def _other_copy_steps(copy: Mapping[str, Any], current: Mapping[str, Any] | None,
                      suffix: str) -> list[PlanStep]:
    """Drop and forget a copy a move left (one being made, or one kept for its grace
    period); the login stays where the tenant's current copy still needs it (that copy's
    own step drops it)."""
    same = current is not None and str(current.get("server")) == str(copy.get("server"))
    where = f"{copy.get('server')}: {copy.get('database')}" + (
        f".{copy['schema']}" if copy.get("schema") else "")

    def drop(i: StepInputs) -> Resource:
        return database_of(i.spec.slug, copy, keep_login=same)

    def forget(i: StepInputs) -> Resource:
        return PlacementRecord(
            i.spec.slug, str(copy["server"]), str(copy["database"]),
            None if copy.get("schema") is None else str(copy["schema"]))
    return [
        PlanStep(f"drop_other_copy{suffix}", "database", "remove", drop,
                 f"drop the copy a move left ({where})"),
        PlanStep(f"forget_other_copy{suffix}", "catalog", "remove", forget,
                 "forget that copy in the catalog"),
    ]


def _connection(i: StepInputs) -> Resource:
    """The connection URL with the login the database uses now: after a credential rotation,
    ``create_database`` reports the second login and its secret (docs/fleet.md)."""
    made = i.outputs.get("create_database") or {}
    return ConnectionSecret(connection_secret_of(i.spec.slug),
                            i.output("create_database", "location"),
                            str(made.get("login") or login_of(i.spec.slug)),
                            str(made.get("secret") or password_secret_of(i.spec.slug)))


def _placement_record(i: StepInputs, placement: Mapping[str, Any]) -> Resource:
    return PlacementRecord(
        i.spec.slug, str(placement["server"]), str(placement["database"]),
        None if placement.get("schema") is None else str(placement["schema"]),
        states=("current", "target", "retiring"))


def _cname_for(domain: str, i: StepInputs) -> DnsRecord:
    return DnsRecord(domain, "CNAME", i.providers.webhost.site().default_hostname,
                     i.settings.providers.dns.ttl, zone=domain.split(".", 1)[1])


def _verification_for(domain: str, i: StepInputs) -> DnsRecord:
    return DnsRecord(f"asuid.{domain}", "TXT", i.providers.webhost.site().verification_id,
                     i.settings.providers.dns.ttl, zone=domain.split(".", 1)[1])


def _cname(i: StepInputs) -> DnsRecord:
    return _cname_for(i.spec.custom_domain, i)


def _verification(i: StepInputs) -> DnsRecord:
    return _verification_for(i.spec.custom_domain, i)


def organization(state: State) -> Callable[[StepInputs], Resource]:
    def build(i: StepInputs) -> Resource:
        path = i.settings.providers.organization.redirect_path
        return TenantOrganization(
            alias=i.spec.slug, name=i.spec.display_name,
            domains=(i.spec.custom_domain, *state.retiring),
            redirect_url=f"https://{i.spec.custom_domain}{path}",
            enabled=not state.suspended, attributes=plan_attributes(i),
            organization_id=i.names.organization_id,
        )
    return build


def plan_attributes(i: StepInputs) -> tuple[tuple[str, str], ...]:
    """What the tenant's plan gives its organization (none for a plan the settings no longer
    have)."""
    plan = i.settings.plans.get(i.spec.plan)
    return tuple(sorted(plan.organization.attributes.items())) if plan is not None else ()


def hostname(state: State, domain: str | None = None) -> Callable[[StepInputs], Resource]:
    def build(i: StepInputs) -> Resource:
        return HostnameBinding(domain or i.spec.custom_domain, i.spec.slug,
                               suspended=state.suspended)
    return build


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


_DOMAIN = frozenset({"custom_domain"})


def onboarding_steps(state: State = ACTIVE, options: Mapping[str, Any] | None = None
                     ) -> tuple[PlanStep, ...]:
    """The onboarding of a tenant in a platform zone, its resources in ``state``.
    ``options`` (the run's) say where its data goes: ``database``, the profile of its plan
    (an onboarding: a step places it first), or ``placement``, where it is (later runs).
    Without either, ``tenant_<slug>`` on the server ``default`` (runs opened before
    placements were recorded)."""
    options = options or {}
    placing: tuple[PlanStep, ...] = ()
    connecting: tuple[PlanStep, ...] = ()
    if isinstance(options.get("database"), Mapping):
        placing = (placement_step(options["database"]),)
        build = placed_database(state, options["database"])
        connecting = (PlanStep(
            "store_connection", "secrets", "ensure", _connection,
            "keep the tenant app's connection URL (login and password in it) as a secret"),)
    else:
        build = database(state, options.get("placement"))
    return (
        PlanStep("register_tenant", "catalog", "ensure",
                 lambda i: TenantRegistration(i.spec.slug),
                 "register the tenant's configuration record"),
        PlanStep("store_database_secret", "secrets", "ensure", _secret,
                 "generate the database login's password and keep it in the secrets provider"),
        *placing,
        PlanStep("create_database", "database", "ensure", build,
                 "create the tenant database (or its schema in a pooled one) and its login",
                 _record_database, reads=frozenset({"plan"})),
        *connecting,
        PlanStep("create_cname_record", "dns", "ensure", _cname,
                 "CNAME <custom domain> -> the web host's default hostname",
                 _record_dns(_cname), reads=_DOMAIN),
        PlanStep("create_verification_record", "dns", "ensure", _verification,
                 "TXT asuid.<custom domain> = the web host's verification ID",
                 _record_dns(_verification), reads=_DOMAIN),
        PlanStep("wait_for_dns", "dns", "ensure",
                 lambda i: DnsPropagation((_cname(i), _verification(i))),
                 "wait until the authoritative servers answer both records", reads=_DOMAIN),
        PlanStep("bind_hostname", "webhost", "ensure", hostname(state),
                 "bind the custom hostname to the web host (checks the asuid record)",
                 lambda i, _o: {"hostname": i.spec.custom_domain}, reads=_DOMAIN),
        PlanStep("issue_certificate", "webhost", "ensure",
                 lambda i: Certificate(i.spec.custom_domain),
                 "issue a certificate for the custom hostname (pending until issued)",
                 _record_certificate, reads=_DOMAIN),
        PlanStep("bind_certificate", "webhost", "ensure",
                 lambda i: SniBinding(i.spec.custom_domain,
                                      i.output("issue_certificate", "thumbprint")),
                 "serve the hostname with its certificate (SNI)", reads=_DOMAIN),
        PlanStep("create_organization", "organization", "ensure", organization(state),
                 "create the organization with the custom domain and redirect URL",
                 lambda _i, o: {"organization_id": o["organization_id"]},
                 reads=frozenset({"custom_domain", "display_name", "plan"})),
        PlanStep("invite_admin", "organization", "ensure",
                 lambda i: OrganizationInvitation(i.spec.slug, i.spec.admin_email, "admin"),
                 "invite the tenant's administrator", reads=frozenset({"admin_email"})),
        PlanStep("activate_tenant", "catalog", "ensure",
                 lambda i: TenantActivation(i.spec.slug), "mark the tenant active"),
    )


ONBOARDING_STEPS: tuple[str, ...] = (
    *(s.name for s in onboarding_steps(ACTIVE, {"database": {"pool": "default"}})), WAIT_STEP)
"""Every built-in onboarding step name (both kinds of domain): what custom steps may name
in ``before`` and ``after``."""

_PLATFORM_DNS = ("create_cname_record", "create_verification_record", "wait_for_dns")


def _customer_wait(records: Sequence[Mapping[str, str]]) -> PlanStep:
    wanted = tuple((str(r["type"]), str(r["name"]), str(r["value"])) for r in records)
    domain = wanted[0][1] if wanted else ""
    if domain and any(name != domain and not name.endswith(f".{domain}")
                      for _, name, _ in wanted):
        raise ProvisioningError(
            f"the run's customer_records name records outside {domain}; the run's options "
            "were changed by hand or are damaged")

    def build(i: StepInputs) -> Resource:
        ttl = i.settings.providers.dns.ttl
        found = tuple(DnsRecord(name, record_type, value, ttl)  # type: ignore[arg-type]
                      for record_type, name, value in wanted)
        return CustomerDomainRecords(
            i.spec.custom_domain, found, i.settings.domains.customer_poll_seconds,
            i.settings.domains.customer_wait_seconds)

    return PlanStep(
        WAIT_STEP, "dns", "ensure", build,
        "wait until the customer's authoritative servers answer the CNAME and TXT records "
        "the customer publishes (customer-managed domain)", reads=_DOMAIN)


def steps_for_domain(options: Mapping[str, Any], state: State = ACTIVE) -> tuple[PlanStep, ...]:
    """The onboarding steps for the kind of custom domain ``options`` say: for a
    customer-managed one, the wait for its customer's records replaces writing them."""
    steps = onboarding_steps(state, options)
    if options.get("domain_kind") != "customer":
        return steps
    wait = _customer_wait(options.get("customer_records", []))
    return tuple(wait if s.name == "create_cname_record" else s for s in steps
                 if s.name not in _PLATFORM_DNS[1:])


def onboarding_plan() -> Plan:
    """For a domain in a platform zone: register, secret, database, DNS (CNAME + asuid TXT),
    wait for DNS, bind hostname, issue certificate, bind it (SNI), organization, admin
    invitation, activate."""
    return Plan("onboard", onboarding_steps())


def customer_onboarding_plan(records: Sequence[Mapping[str, str]]) -> Plan:
    """For a customer-managed domain: as `onboarding_plan`, but instead of writing DNS records
    the run waits until the customer's authoritative servers answer ``records`` (from the
    run's options), and only then binds the hostname and issues its certificate."""
    return Plan("onboard", steps_for_domain(
        {"domain_kind": "customer", "customer_records": list(records)}))


def domain_options(domain: str, settings: Settings, providers: Providers, *,
                   previewing: bool = False) -> dict[str, Any]:
    """What a run that claims ``domain`` records of it: its kind and, for a customer-managed
    one, the records its customer publishes (with a verification token made for this
    claim). Checks the domain rules first (`SpecError` on a broken one). Reads the web
    host's identity (default hostname, verification ID) for a customer domain."""
    rules = DomainRules.from_settings(settings)
    rules.check(domain)
    kind = rules.kind_of(domain)
    if kind == "platform":
        return {"domain_kind": "platform"}
    site = providers.webhost.site()
    token = "<made when the run is opened>" if previewing else new_verification_token()
    return {"domain_kind": "customer", "customer_records": customer_records(
        domain, default_hostname=site.default_hostname,
        verification_id=site.verification_id, token=token)}


def onboarding_options(spec: TenantSpec, settings: Settings, providers: Providers, *,
                       previewing: bool = False) -> dict[str, Any]:
    """The options an onboarding run is opened with (`domain_options` of its domain)."""
    return domain_options(spec.custom_domain, settings, providers, previewing=previewing)


# -- removal ---------------------------------------------------------------------------------

def retirement_steps(names: Sequence[RetiringName], *, prefix: str = "previous_"
                     ) -> list[PlanStep]:
    """Remove what serves each of ``names`` (SNI, certificate, hostname binding, and the
    DNS records tenantops wrote for a platform domain), in reverse order of their making.
    The tenant's own outputs (its hostname, certificate) are left alone: they describe its
    current domain. Step names get ``_2``, ``_3``... after the first name."""
    steps: list[PlanStep] = []
    for index, name in enumerate(names):
        domain = name.domain
        suffix = "" if index == 0 else f"_{index + 1}"

        def cname(i: StepInputs, d: str = domain) -> DnsRecord:
            return _cname_for(d, i)

        def txt(i: StepInputs, d: str = domain) -> DnsRecord:
            return _verification_for(d, i)

        def sni(i: StepInputs, d: str = domain) -> Resource:
            return SniBinding(d, "")

        def certificate(i: StepInputs, d: str = domain) -> Resource:
            return Certificate(d)

        def binding(i: StepInputs, d: str = domain) -> Resource:
            return HostnameBinding(d, i.spec.slug)

        steps += [
            PlanStep(f"unbind_{prefix}certificate{suffix}", "webhost", "remove", sni,
                     f"stop serving {domain} with its certificate"),
            PlanStep(f"delete_{prefix}certificate{suffix}", "webhost", "remove", certificate,
                     f"delete the certificate of {domain}"),
            PlanStep(f"unbind_{prefix}hostname{suffix}", "webhost", "remove", binding,
                     f"remove {domain} from the web host"),
        ]
        if name.kind == "platform":
            steps += [
                PlanStep(f"delete_{prefix}verification_record{suffix}", "dns", "remove", txt,
                         f"delete TXT asuid.{domain}", _record_dns(txt, removed=True)),
                PlanStep(f"delete_{prefix}cname_record{suffix}", "dns", "remove", cname,
                         f"delete CNAME {domain}", _record_dns(cname, removed=True)),
            ]
    return steps


def release_step(names: Sequence[RetiringName], grace_seconds: float = 0.0) -> PlanStep:
    domains = tuple(n.domain for n in names)
    return PlanStep("release_previous_domains", "catalog", "remove",
                    lambda i: DomainRetirement(i.spec.slug, domains, grace_seconds),
                    "the tenant no longer holds its previous domains (others may claim them)")


OFFBOARDING_COUNTERPARTS: dict[str, str] = {
    "register_tenant": "deregister_tenant",
    "store_database_secret": "delete_database_secret",
    "place_database": "forget_placement",
    "create_database": "drop_database",
    "store_connection": "delete_connection_secret",
    "create_cname_record": "delete_cname_record",
    "create_verification_record": "delete_verification_record",
    "bind_hostname": "unbind_hostname",
    "issue_certificate": "delete_certificate",
    "bind_certificate": "unbind_certificate",
    "create_organization": "remove_organization",
    "activate_tenant": "deactivate_tenant",
}
"""The offboarding step that undoes each onboarding step (the waits and the invitation undo
nothing of their own): custom steps keep their place in the reverse order through it."""


def offboarding_plan(*, keep_database: bool = False,
                     retiring: Sequence[RetiringName] = (),
                     placement: Mapping[str, Any] | None = None,
                     other_copies: Sequence[Mapping[str, Any]] = ()) -> Plan:
    """The onboarding undone in reverse; ``keep_database`` keeps the database and its secret.
    Names the tenant still retires after a domain change are removed and released too."""
    steps = [
        PlanStep("deactivate_tenant", "catalog", "remove",
                 lambda i: TenantActivation(i.spec.slug), "mark the tenant as offboarding"),
        PlanStep("remove_organization", "organization", "remove", organization(ACTIVE),
                 "delete the organization with its domains, members and invitations",
                 _cleared("organization_id")),
        PlanStep("unbind_certificate", "webhost", "remove",
                 lambda i: SniBinding(i.spec.custom_domain, ""),
                 "stop serving the hostname with its certificate"),
        PlanStep("delete_certificate", "webhost", "remove",
                 lambda i: Certificate(i.spec.custom_domain), "delete the certificate",
                 _cleared("certificate_thumbprint", "certificate_expires_at")),
        PlanStep("unbind_hostname", "webhost", "remove", hostname(ACTIVE),
                 "remove the custom hostname from the web host", _cleared("hostname")),
        PlanStep("delete_verification_record", "dns", "remove", _verification,
                 "delete TXT asuid.<custom domain>", _record_dns(_verification, removed=True)),
        PlanStep("delete_cname_record", "dns", "remove", _cname,
                 "delete CNAME <custom domain>", _record_dns(_cname, removed=True)),
    ]
    if retiring:
        steps += retirement_steps(retiring)
        steps.append(release_step(retiring))
    if not keep_database:
        for index, copy in enumerate(other_copies):
            steps += _other_copy_steps(copy, placement, "" if index == 0 else f"_{index + 1}")
        steps += [
            PlanStep("drop_database", "database", "remove", database(ACTIVE, placement),
                     "drop the tenant database (or its schema) and its login",
                     _cleared("database_name", "database_login", "database_secret")),
            PlanStep("delete_database_secret", "secrets", "remove", _secret,
                     "delete the database login's password"),
        ]
        if placement is not None:
            # Onboarding's reverse: the URL goes before the database it names.
            steps.insert(len(steps) - 2, PlanStep(
                "delete_connection_secret", "secrets", "remove",
                lambda i: Secret(connection_secret_of(i.spec.slug)),
                "delete the tenant app's connection URL"))
            steps.append(PlanStep(
                "forget_placement", "catalog", "remove",
                lambda i: _placement_record(i, placement),
                "forget where the tenant's data was (the server has room for another)"))
    steps.append(PlanStep("deregister_tenant", "catalog", "remove",
                          lambda i: TenantRegistration(i.spec.slug),
                          "deregister the tenant (its record stays as history)"))
    return Plan("offboard", tuple(steps))
