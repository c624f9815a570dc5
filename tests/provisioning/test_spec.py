"""TenantSpec: every rule, and every error naming the field, the value and the rule."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenantops.errors import SpecError, SpecProblem
from tenantops.provisioning.spec import (
    MAX_DOMAIN_LENGTH,
    RESERVED_SLUGS,
    TenantSpec,
    normalize_hostname,
)

VALID: dict[str, Any] = {
    "slug": "acme", "display_name": "Acme Corp", "custom_domain": "portal.acme.test",
    "plan": "standard", "admin_email": "admin@acme.test",
}


def problems_of(**changes: object) -> list[SpecProblem]:
    with pytest.raises(SpecError) as caught:
        TenantSpec(**{**VALID, **changes})
    return list(caught.value.problems)


def test_a_valid_spec_is_normalised() -> None:
    spec = TenantSpec(**{**VALID, "display_name": "  Acme   Corp ",
                         "custom_domain": "Portal.Bücher.Example.",
                         "admin_email": "Ops@Example.COM", "tags": {"region": "westeurope"}})
    assert spec.display_name == "Acme Corp"
    assert spec.custom_domain == "portal.xn--bcher-kva.example"
    assert spec.admin_email == "Ops@example.com"
    assert spec.host_label == "portal"
    assert spec.parent_domain == "xn--bcher-kva.example"


@pytest.mark.parametrize(("field", "value", "rule"), [
    ("slug", "ab", "must be 3 to 32 characters long (got 2)"),
    ("slug", "a" * 33, "must be 3 to 32 characters long (got 33)"),
    ("slug", "Acme", "must contain only lowercase letters a-z, digits and hyphens"),
    ("slug", "acme_co", "must contain only lowercase letters a-z, digits and hyphens"),
    ("slug", "1acme", "must start with a lowercase letter"),
    ("slug", "acme-", "must not end with a hyphen"),
    ("slug", "ac--me", "must not contain two hyphens in a row"),
    ("slug", "admin", "is reserved for the platform; choose another slug"),
    ("display_name", "   ", "must not be empty"),
    ("display_name", "A" * 101, "must be at most 100 characters (got 101)"),
    ("display_name", "Acme\x00", "must not contain control or unassigned characters"),
    ("custom_domain", "acme.test", "must be a subdomain such as portal.contoso.com"),
    ("custom_domain", "10.0.0.1", "must be a hostname, not an IP address"),
    ("custom_domain", "portal.acme.123", "must end in a top-level domain, not a number"),
    ("custom_domain", "por_tal.acme.test", "must be a valid internationalised hostname"),
    ("custom_domain", "-portal.acme.test", "must be a valid internationalised hostname"),
    ("custom_domain", ("a" * 60) + ".acme.test", f"must be at most {MAX_DOMAIN_LENGTH} characters"),
    ("plan", "gold", "must be one of free, standard, premium"),
    ("admin_email", "admin", "must be an email address such as admin@contoso.com"),
    ("admin_email", "a b@acme.test", "must have a local part of at most 64"),
    ("admin_email", "admin@localhost", "must have a valid domain: must have at least 2 labels"),
    ("tags", {"Region": "x"}, "key 'Region' must start with a-z"),
    ("tags", {"region": 1}, "value of 'region' must be a string"),
    ("tags", {f"k{i}": "v" for i in range(21)}, "must have at most 20 entries (got 21)"),
])
def test_each_rule_is_named_with_field_and_value(field: str, value: object, rule: str) -> None:
    [problem] = problems_of(**{field: value})
    assert problem.field == field
    assert problem.value == value
    assert rule in problem.rule


def test_all_problems_are_reported_at_once_in_one_message() -> None:
    with pytest.raises(SpecError) as caught:
        TenantSpec(slug="Admin", display_name="", custom_domain="x.com", admin_email="nope",
                   plan="gold", colour="red")
    fields = [p.field for p in caught.value.problems]
    assert fields == ["slug", "display_name", "custom_domain", "plan", "admin_email", "colour"]
    message = str(caught.value)
    assert message.startswith("invalid tenant spec: slug = 'Admin': must contain only")
    assert "colour = 'red': is not a field of a tenant spec" in message
    assert message.endswith("correct these fields and try again")


def test_missing_fields_are_required() -> None:
    with pytest.raises(SpecError) as caught:
        TenantSpec.parse({"slug": "acme"})
    assert {(p.field, p.rule) for p in caught.value.problems} == {
        ("display_name", "is required"), ("custom_domain", "is required"),
        ("admin_email", "is required")}


def test_parse_refuses_what_is_not_a_mapping() -> None:
    with pytest.raises(SpecError, match="spec = \\['acme'\\]: must be a mapping"):
        TenantSpec.parse(["acme"])  # type: ignore[arg-type]


def test_spec_is_immutable_and_round_trips_through_json() -> None:
    spec = TenantSpec(**VALID)
    assert TenantSpec.parse(spec.model_dump(mode="json")) == spec
    with pytest.raises(Exception):  # noqa: B017,PT011 - pydantic's frozen-instance error
        spec.slug = "other"  # type: ignore[misc]


# -- properties --------------------------------------------------------------------------

label_chars = string.ascii_lowercase + string.digits
slugs = st.builds(
    lambda first, middle, last: first + middle + last,
    st.sampled_from(string.ascii_lowercase),
    st.text(alphabet=label_chars + "-", min_size=1, max_size=30).filter(lambda s: "--" not in s),
    st.sampled_from(label_chars),
).filter(lambda s: "--" not in s and s not in RESERVED_SLUGS and len(s) <= 32)

labels = st.text(alphabet=label_chars, min_size=1, max_size=12)
domains = st.builds(lambda a, b, tld: f"{a}.{b}.{tld}", labels, labels,
                    st.sampled_from(["test", "example", "com", "co.uk"]))


@given(slugs)
def test_every_valid_slug_is_accepted_as_is(slug: str) -> None:
    assert TenantSpec(**{**VALID, "slug": slug}).slug == slug


def attempt(**changes: object) -> TenantSpec | SpecError:
    """The spec, or the error refusing it (property tests check both outcomes)."""
    try:
        return TenantSpec(**{**VALID, **changes})
    except SpecError as exc:
        return exc


@given(st.text(max_size=40))
def test_any_text_as_slug_is_accepted_or_refused_with_its_value(slug: str) -> None:
    spec = attempt(slug=slug)
    if isinstance(spec, SpecError):
        [problem] = spec.problems
        assert problem.field == "slug"
        assert problem.value == slug
        assert repr(slug) in str(spec)
    else:
        assert spec.slug == slug
        assert 3 <= len(slug) <= 32
        assert slug == slug.lower()
        assert slug not in RESERVED_SLUGS


@given(domains)
def test_domain_normalisation_is_idempotent(domain: str) -> None:
    once = TenantSpec(**{**VALID, "custom_domain": domain.upper() + "."}).custom_domain
    assert once == domain
    assert normalize_hostname(once) == once
    assert TenantSpec(**{**VALID, "custom_domain": once}).custom_domain == once


@given(st.text(max_size=80))
def test_any_text_as_domain_gives_an_ascii_hostname_or_a_named_refusal(text: str) -> None:
    spec = attempt(custom_domain=text)
    if isinstance(spec, SpecError):
        assert [p.field for p in spec.problems] == ["custom_domain"]
        assert spec.problems[0].value == text
    else:
        domain = spec.custom_domain
        assert domain.isascii()
        assert len(domain) <= MAX_DOMAIN_LENGTH
        assert domain.count(".") >= 2
        assert set(domain) <= set(label_chars + "-.")


@given(st.dictionaries(st.text(max_size=8), st.one_of(st.text(max_size=8), st.integers()),
                       max_size=8))
def test_arbitrary_input_raises_only_spec_error(data: dict[str, object]) -> None:
    try:
        TenantSpec.parse(data)
    except SpecError as exc:
        problems = exc.problems
    else:  # pragma: no cover - random dicts never make a valid spec
        problems = ()
    assert problems
    assert all(problem.field and problem.rule for problem in problems)
