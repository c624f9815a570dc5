"""`TenantSpec`: what a request to onboard a tenant must say, validated once at the edge.

Every rule lives here, so the API, the CLI and the engine agree on what a valid tenant is.
A spec that breaks rules raises `SpecError` listing every broken field with the value
received and the rule, never a pydantic exception.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Collection, Mapping
from contextvars import ContextVar
from typing import Any

import idna
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from tenantops.errors import SpecError, SpecProblem

__all__ = [
    "MAX_DOMAIN_LENGTH",
    "PLANS",
    "RESERVED_SLUGS",
    "Plan",
    "TenantSpec",
    "normalize_hostname",
]

SLUG_MIN, SLUG_MAX = 3, 32
# App Service managed certificates accept at most 64 characters in the hostname.
MAX_DOMAIN_LENGTH = 64
DISPLAY_NAME_MAX = 100
MAX_TAGS, TAG_VALUE_MAX = 20, 256
PLANS = ("free", "standard", "premium")
"""The plans there are when the settings have no ``[plans]`` table (`Settings.plans` is the
set a request is checked against: `tenantops.provisioning.run_requests`)."""
Plan = str
_PLAN_NAME = re.compile(r"[a-z][a-z0-9-]{0,15}")
_VALIDATION_CONTEXT: ContextVar[dict[str, Any] | None] = ContextVar(
    "tenantops_spec_validation", default=None)

# Names that collide with the platform's own hostnames, databases or routes.
RESERVED_SLUGS = frozenset({
    "admin", "administrator", "api", "app", "apps", "assets", "auth", "cdn", "console",
    "dashboard", "default", "dev", "docs", "edge", "help", "internal", "localhost", "login",
    "mail", "master", "null", "postgres", "prod", "public", "root", "sa", "smtp", "static",
    "status", "support", "sys", "system", "template0", "template1", "tenant", "tenantops",
    "test", "www",
})

_SLUG_CHARS = re.compile(r"[a-z0-9-]+")
_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_TAG_KEY = re.compile(r"[a-z][a-z0-9_.-]{0,62}")


def _has_control_characters(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in text)


def normalize_hostname(value: str, *, min_labels: int = 2) -> str:
    """Return ``value`` as a lowercase ASCII hostname (IDNA 2008 A-labels, UTS #46 mapping).

    Raises ValueError whose text is the rule broken. Idempotent: normalising a normalised
    hostname returns it unchanged.
    """
    text = value.strip()
    if text.endswith("."):
        text = text[:-1]
    if not text:
        raise ValueError("must be a hostname such as app.contoso.com")
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        pass
    else:
        raise ValueError("must be a hostname, not an IP address")
    try:
        ascii_name = idna.encode(text, uts46=True).decode("ascii").lower()
    except idna.IDNAError as exc:
        raise ValueError(f"must be a valid internationalised hostname ({exc})") from None
    labels = ascii_name.split(".")
    for label in labels:
        if not _LDH_LABEL.fullmatch(label):
            raise ValueError(
                f"label {label!r} must be 1 to 63 letters, digits or inner hyphens"
            )
    if len(labels) < min_labels:
        raise ValueError(f"must have at least {min_labels} labels")
    if labels[-1].isdigit():
        raise ValueError("must end in a top-level domain, not a number")
    return ascii_name


class TenantSpec(BaseModel):
    """A validated request for one tenant. Construct it with keyword arguments or `parse`.

    ``slug`` names the tenant everywhere (database, organization alias, workflow IDs);
    ``custom_domain`` is stored IDNA-normalised (A-labels, lowercase, no trailing dot).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    slug: str = Field(description="lowercase DNS label, 3 to 32 characters")
    display_name: str = Field(description="the tenant's name as people see it")
    custom_domain: str = Field(description="hostname the tenant's users visit (a subdomain)")
    plan: Plan = Field(default="standard", description="one of the plans in the settings "
                       "([plans]; free, standard, premium by default)")
    admin_email: str = Field(description="the first administrator, invited to the organization")
    tags: dict[str, str] = Field(default_factory=dict)

    def __init__(self, **data: Any) -> None:
        # The plans to check against reach the validators as pydantic's validation context,
        # set by `parse` (pydantic's documented way to give __init__ a context).
        try:
            self.__pydantic_validator__.validate_python(
                data, self_instance=self, context=_VALIDATION_CONTEXT.get())
        except ValidationError as exc:
            raise SpecError(_problems(exc)) from None

    @classmethod
    def parse(cls, data: Mapping[str, object], plans: Collection[str] | None = PLANS
              ) -> TenantSpec:
        """Validate a mapping (JSON body, TOML table); raise `SpecError` on any problem.
        ``plans``: the plans there are (the settings' ``[plans]``); None: any plan name
        (a spec read back from the catalog, whose plan was checked when it was stored)."""
        if not isinstance(data, Mapping):
            raise SpecError([SpecProblem("spec", data, "must be a mapping of field to value")])
        token = _VALIDATION_CONTEXT.set({"plans": None if plans is None else tuple(plans)})
        try:
            return cls(**{str(k): v for k, v in data.items()})
        finally:
            _VALIDATION_CONTEXT.reset(token)

    @classmethod
    def stored(cls, fields: Mapping[str, object]) -> TenantSpec:
        """A spec read back from the catalog (its plan is not checked against the settings:
        a plan taken out of them still names the tenants that have it)."""
        return cls.parse(fields, plans=None)

    @property
    def host_label(self) -> str:
        """The custom domain's first label: ``portal`` in ``portal.contoso.com``."""
        return self.custom_domain.split(".", 1)[0]

    @property
    def parent_domain(self) -> str:
        """The custom domain without its first label: ``contoso.com``."""
        return self.custom_domain.split(".", 1)[1]

    @field_validator("slug", mode="before")
    @classmethod
    def _check_slug(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        if not SLUG_MIN <= len(value) <= SLUG_MAX:
            raise ValueError(f"must be {SLUG_MIN} to {SLUG_MAX} characters long (got {len(value)})")
        if not _SLUG_CHARS.fullmatch(value):
            raise ValueError("must contain only lowercase letters a-z, digits and hyphens")
        if not value[0].isalpha():
            raise ValueError("must start with a lowercase letter")
        if value.endswith("-"):
            raise ValueError("must not end with a hyphen")
        if "--" in value:
            raise ValueError("must not contain two hyphens in a row")
        if value in RESERVED_SLUGS:
            raise ValueError("is reserved for the platform; choose another slug")
        return value

    @field_validator("display_name", mode="before")
    @classmethod
    def _check_display_name(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        text = " ".join(value.split())
        if not text:
            raise ValueError("must not be empty")
        if len(text) > DISPLAY_NAME_MAX:
            raise ValueError(f"must be at most {DISPLAY_NAME_MAX} characters (got {len(text)})")
        if _has_control_characters(text):
            raise ValueError("must not contain control or unassigned characters")
        return text

    @field_validator("custom_domain", mode="before")
    @classmethod
    def _check_custom_domain(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        try:
            name = normalize_hostname(value, min_labels=3)
        except ValueError as exc:
            if "at least 3 labels" in str(exc):
                raise ValueError(
                    "must be a subdomain such as portal.contoso.com: an apex domain cannot "
                    "hold the CNAME record"
                ) from None
            raise
        if len(name) > MAX_DOMAIN_LENGTH:
            raise ValueError(
                f"must be at most {MAX_DOMAIN_LENGTH} characters once IDNA-encoded "
                f"(got {len(name)}), as App Service managed certificates require"
            )
        return name

    @field_validator("plan", mode="before")
    @classmethod
    def _check_plan(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        plans = (info.context or {}).get("plans", PLANS) if info.context is not None else PLANS
        if plans is not None and value not in plans:
            raise ValueError(f"must be one of {', '.join(plans)} (the plans in the settings: "
                             "[plans])")
        if not _PLAN_NAME.fullmatch(value):
            raise ValueError("must be a plan's name: 1 to 16 of a-z, 0-9 and '-', starting "
                             "with a letter")
        return value

    @field_validator("admin_email", mode="before")
    @classmethod
    def _check_admin_email(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        text = value.strip()
        local, at, domain = text.rpartition("@")
        if not at or not local:
            raise ValueError("must be an email address such as admin@contoso.com")
        if len(local) > 64 or not _LOCAL_PART.fullmatch(local):
            raise ValueError("must have a local part of at most 64 unquoted characters")
        try:
            domain = normalize_hostname(domain)
        except ValueError as exc:
            raise ValueError(f"must have a valid domain: {exc}") from None
        address = f"{local}@{domain}"
        if len(address) > 254:
            raise ValueError("must be at most 254 characters")
        return address

    @field_validator("tags", mode="before")
    @classmethod
    def _check_tags(cls, value: object) -> object:
        if not isinstance(value, Mapping):
            return value
        if len(value) > MAX_TAGS:
            raise ValueError(f"must have at most {MAX_TAGS} entries (got {len(value)})")
        for key, item in value.items():
            if not isinstance(key, str) or not _TAG_KEY.fullmatch(key):
                raise ValueError(
                    f"key {key!r} must start with a-z and use only a-z, 0-9, '_', '.', '-' "
                    "(at most 63 characters)"
                )
            if not isinstance(item, str):
                raise ValueError(f"value of {key!r} must be a string")
            if len(item) > TAG_VALUE_MAX or _has_control_characters(item):
                raise ValueError(
                    f"value of {key!r} must be at most {TAG_VALUE_MAX} printable characters"
                )
        return dict(value)


def _problems(exc: ValidationError) -> list[SpecProblem]:
    problems = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "spec"
        rule = error["msg"]
        if rule.startswith("Value error, "):
            rule = rule[len("Value error, "):]
        elif error["type"] == "missing":
            rule = "is required"
        elif error["type"] == "extra_forbidden":
            rule = "is not a field of a tenant spec"
        problems.append(SpecProblem(field, error.get("input"), rule))
    return problems
