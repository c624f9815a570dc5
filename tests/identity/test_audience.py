from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenantops.errors import AudienceError
from tenantops.identity import Audience, parse_audience

API = "5f9d1b7c-2a4e-4c1d-9b3a-7e6f0a1c2d3e"

guids = st.uuids().map(str)
labels = st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True)
hosts = st.lists(labels, min_size=1, max_size=3).map(".".join)
scope_names = st.from_regex(r"[A-Za-z][A-Za-z0-9._-]{0,30}", fullmatch=True).filter(
    lambda s: s != ".default")


@pytest.mark.parametrize(
    ("given_value", "resource", "scope"),
    [
        (API, API, f"{API}/.default"),
        (API.upper(), API, f"{API}/.default"),
        (f"api://{API}", f"api://{API}", f"api://{API}/.default"),
        (f"api://{API}/.default", f"api://{API}", f"api://{API}/.default"),
        (f"{API}/.default", API, f"{API}/.default"),
        ("api://billing", "api://billing", "api://billing/.default"),
        ("https://management.core.windows.net/", "https://management.core.windows.net/",
         "https://management.core.windows.net//.default"),
        ("https://management.azure.com/.default", "https://management.azure.com",
         "https://management.azure.com/.default"),
        (f"api://{API}/tenants/.default", f"api://{API}/tenants",
         f"api://{API}/tenants/.default"),
        (f"  api://{API}  ", f"api://{API}", f"api://{API}/.default"),
    ],
)
def test_accepted_audiences_give_resource_and_scope(given_value: str, resource: str,
                                                    scope: str) -> None:
    audience = parse_audience(given_value)
    assert audience.resource == resource
    assert audience.scope == scope


def test_named_scope_is_refused_with_aadsts500011_and_what_to_use() -> None:
    with pytest.raises(AudienceError) as caught:
        parse_audience("api://app/some-scope")
    message = str(caught.value)
    assert "looks like a delegated permission scope ('some-scope' of the API 'api://app')" \
        in message
    assert "AADSTS500011" in message
    assert "Use the App ID URI 'api://app', the scope 'api://app/.default'" in message
    assert "client ID (a GUID)" in message
    assert "write 'api://app/some-scope/.default'" in message


def test_graph_style_scope_is_refused() -> None:
    with pytest.raises(AudienceError, match=r"User\.Read"):
        parse_audience("https://graph.microsoft.com/User.Read")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("", "the audience is empty"),
        ("   ", "the audience is empty"),
        (f"api://{API}/.default openid", "contains several values"),
        ("tenantops-api", "is neither a client ID (a GUID"),
        ("/.default", "has no resource before /.default"),
        (f"api://{API}/.default/.default", "ends in /.default twice"),
        ("api://", "has no host"),
        (f"api://{API}?x=1", "has a query or fragment"),
    ],
)
def test_unusable_values_are_refused_with_the_reason(value: str, words: str) -> None:
    with pytest.raises(AudienceError, match=words.replace("(", r"\(")):
        parse_audience(value)


@given(guids, st.booleans())
def test_any_client_id_is_its_own_resource(guid: str, upper: bool) -> None:
    audience = parse_audience(guid.upper() if upper else guid)
    assert audience.resource == guid
    assert audience.scope == f"{guid}/.default"
    assert audience.client_id == guid


@given(hosts)
def test_app_id_uri_and_its_default_scope_are_the_same_audience(host: str) -> None:
    uri = f"api://{host}"
    assert parse_audience(uri) == parse_audience(f"{uri}/.default")
    assert parse_audience(uri).resource == uri


@given(st.one_of(guids, hosts.map(lambda h: f"api://{h}"),
                 hosts.map(lambda h: f"https://{h}/")))
def test_parsing_the_derived_scope_gives_the_same_resource(value: str) -> None:
    audience = parse_audience(value)
    again = parse_audience(audience.scope)
    assert again.resource == audience.resource
    assert again.scope == audience.scope


@given(hosts, scope_names)
def test_every_named_scope_is_refused(host: str, name: str) -> None:
    with pytest.raises(AudienceError) as caught:
        parse_audience(f"api://{host}/{name}")
    assert "AADSTS500011" in str(caught.value)
    assert f"'api://{host}/.default'" in str(caught.value)


@given(st.text(alphabet=st.characters(codec="ascii", categories=["L", "N"]), min_size=1))
def test_plain_words_are_refused(word: str) -> None:
    try:
        uuid.UUID(word)
    except ValueError:
        pass
    else:
        return
    with pytest.raises(AudienceError):
        parse_audience(word)


@given(guids)
def test_client_id_and_api_uri_forms_match_each_other(guid: str) -> None:
    audience = parse_audience(guid)
    assert audience.matches(f"api://{guid}")
    assert audience.matches(f"api://{guid}/")
    assert audience.matches(guid.upper())
    assert parse_audience(f"api://{guid}").matches(guid)
    assert not audience.matches("https://management.core.windows.net/")


def test_audience_equality_ignores_how_it_was_written() -> None:
    assert parse_audience(API.upper()) == Audience(API)
    assert str(parse_audience(f"api://{API}/.default")) == f"api://{API}"


def test_a_scope_of_a_microsoft_service_names_the_service() -> None:
    with pytest.raises(AudienceError) as caught:
        parse_audience("https://management.azure.com/user_impersonation")
    assert "('user_impersonation' of the API 'https://management.azure.com', which is Azure " \
        "Resource Manager)" in str(caught.value)


def test_an_audience_knows_when_it_names_a_microsoft_service() -> None:
    arm = parse_audience("https://management.core.windows.net/")
    assert arm.first_party is not None
    assert arm.first_party.name == "Azure Resource Manager"
    assert parse_audience("5f9d1b7c-2a4e-4c1d-9b3a-7e6f0a1c2d3e").first_party is None
