"""Which identity source is used: detection in azure-identity's order, the override, and the
one message that lists every source when none can be used. Never a silent fallback."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tenantops.cli.main import app as cli
from tenantops.config import IdentitySettings
from tenantops.emulator.directory import API_CLIENT_ID
from tenantops.emulator.server import EmulatorInfo
from tenantops.errors import ConfigError, CredentialUnavailableError, TokenRequestError
from tenantops.identity import (
    IdentityCredential,
    check_sources,
    detect_runtime,
    parse_audience,
    parse_identity,
    probe_imds,
)
from tests.identity.conftest import ActAs, Stats, no_imds

CI_CLIENT_ID = "4d3c2b1a-0f9e-4d8c-b7a6-5f4e3d2c1b0a"
AUDIENCE = parse_audience(API_CLIENT_ID)


@pytest.mark.parametrize(
    ("environ", "runtime", "variables"),
    [
        ({"IDENTITY_ENDPOINT": "http://localhost:1/x", "IDENTITY_HEADER": "h"}, "app-service",
         ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")),
        ({"IDENTITY_ENDPOINT": "https://localhost:2377/t", "IDENTITY_HEADER": "h",
          "IDENTITY_SERVER_THUMBPRINT": "ab"}, "service-fabric",
         ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT")),
        ({"IDENTITY_ENDPOINT": "http://localhost:40342/t", "IMDS_ENDPOINT": "http://l:40342"},
         "arc", ("IDENTITY_ENDPOINT", "IMDS_ENDPOINT")),
        ({"MSI_ENDPOINT": "http://localhost:1/msi", "MSI_SECRET": "s"}, "msi",
         ("MSI_ENDPOINT", "MSI_SECRET")),
        ({"MSI_ENDPOINT": "http://localhost:50342/oauth2/token"}, "cloud-shell",
         ("MSI_ENDPOINT",)),
        ({"AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://localhost:9/x"}, "imds",
         ("AZURE_POD_IDENTITY_AUTHORITY_HOST",)),
        ({}, "imds", ()),
    ],
)
def test_runtime_is_detected_in_azure_identity_order(
    environ: dict[str, str], runtime: str, variables: tuple[str, ...]
) -> None:
    detected = detect_runtime(environ)
    assert detected.name == runtime
    assert detected.variables == variables
    assert detected.detected == bool(variables)


def test_runtime_description_shows_variable_names_never_secret_values() -> None:
    described = detect_runtime({"IDENTITY_ENDPOINT": "http://127.0.0.1:41/arc/s3cr3t/token",
                                "IMDS_ENDPOINT": "http://127.0.0.1:41/arc/s3cr3t"}).describe()
    assert described == ("Azure Arc endpoint at http://127.0.0.1:41 "
                         "(IDENTITY_ENDPOINT, IMDS_ENDPOINT set)")
    assert "s3cr3t" not in detect_runtime(
        {"IDENTITY_ENDPOINT": "http://x:1/t", "IDENTITY_HEADER": "s3cr3t"}).describe()


def test_sources_are_checked_in_azure_identity_order() -> None:
    checks = check_sources({"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": CI_CLIENT_ID},
                           imds_probe=no_imds)
    assert [c.source for c in checks] == [
        "environment", "workload-identity", "managed-identity", "azure-cli"]
    assert [c.available for c in checks] == [False, False, False, False]
    assert checks[0].detail == "AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH not set"
    assert checks[1].detail == "AZURE_FEDERATED_TOKEN_FILE not set"


def test_environment_service_principal_is_described_without_its_secret() -> None:
    check = check_sources({"AZURE_TENANT_ID": "tid", "AZURE_CLIENT_ID": CI_CLIENT_ID,
                           "AZURE_CLIENT_SECRET": "ci-local-secret"}, imds_probe=no_imds)[0]
    assert check.available
    assert check.detail == (f"service principal {CI_CLIENT_ID} in tenant tid with a client "
                            "secret (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET set)")
    assert "ci-local-secret" not in check.describe()


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        ("82D0D4AE-861D-5413-A13A-5DAEEB0A8530", "client_id",
         "82d0d4ae-861d-5413-a13a-5daeeb0a8530"),
        ("client_id=82d0d4ae-861d-5413-a13a-5daeeb0a8530", "client_id",
         "82d0d4ae-861d-5413-a13a-5daeeb0a8530"),
        ("object_id=82d0d4ae-861d-5413-a13a-5daeeb0a8530", "object_id",
         "82d0d4ae-861d-5413-a13a-5daeeb0a8530"),
        ("principal_id=82d0d4ae-861d-5413-a13a-5daeeb0a8530", "object_id",
         "82d0d4ae-861d-5413-a13a-5daeeb0a8530"),
        ("/subscriptions/0/resourceGroups/rg/providers/Microsoft.ManagedIdentity/"
         "userAssignedIdentities/u", "resource_id",
         "/subscriptions/0/resourceGroups/rg/providers/Microsoft.ManagedIdentity/"
         "userAssignedIdentities/u"),
    ],
)
def test_user_assigned_identity_is_named_three_ways(value: str, kind: str,
                                                    expected: str) -> None:
    selector = parse_identity(value)
    assert (selector.kind, selector.value) == (kind, expected)


@pytest.mark.parametrize("value", ["uami-reader", "color=blue", "/subscriptions/x"])
def test_a_malformed_identity_names_the_accepted_forms(value: str) -> None:
    with pytest.raises(ConfigError, match="identity setting"):
        parse_identity(value)


def test_when_no_source_works_one_message_lists_each_source_and_why() -> None:
    with IdentityCredential(imds_probe=no_imds) as credential, \
            pytest.raises(CredentialUnavailableError) as caught:
        credential.get_token(AUDIENCE)
    assert str(caught.value) == (
        "no identity was found here, so there is no token to call the API with. Looked for, in "
        "azure-identity's order:\n"
        "  - environment: AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET or "
        "AZURE_CLIENT_CERTIFICATE_PATH not set\n"
        "  - workload-identity: AZURE_FEDERATED_TOKEN_FILE, AZURE_TENANT_ID, AZURE_CLIENT_ID "
        "not set\n"
        "  - managed-identity: no Azure runtime variables set (IDENTITY_ENDPOINT+IDENTITY_HEADER,"
        " IDENTITY_ENDPOINT+IMDS_ENDPOINT, MSI_ENDPOINT) and no Azure IMDS: nothing answered at "
        "http://169.254.169.254 within 0.5 s (ConnectTimeout)\n"
        "  - azure-cli: 'az' not found on PATH\n"
        "Ways to provide one:\n"
        "  - locally, an identity of the emulator: export $(tenantops emulator env --identity "
        "aa-onboarding --runtime automation | xargs)\n"
        "  - a service principal: AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or "
        "AZURE_CLIENT_CERTIFICATE_PATH)\n"
        "  - a managed identity: run in Azure (Automation, Functions/App Service, a VM, Arc); "
        "--identity <client-id> (or AZURE_CLIENT_ID) names a user-assigned one, and --source "
        "managed-identity asks Azure IMDS without probing it first\n"
        "  - the Azure CLI's signed-in account: az login")


def test_detection_picks_the_managed_identity_of_the_runtime(act_as: ActAs) -> None:
    act_as("aa-onboarding", "automation")
    with IdentityCredential(imds_probe=no_imds) as credential:
        token = credential.get_token(AUDIENCE)
    assert credential.source is not None
    assert credential.source.source == "managed-identity"
    assert token.decode().roles == ["Tenants.Read", "Tenants.Write"]


def test_environment_comes_before_managed_identity(
    act_as: ActAs, monkeypatch: pytest.MonkeyPatch, emulator: EmulatorInfo
) -> None:
    act_as("aa-onboarding", "app-service")
    monkeypatch.setenv("AZURE_CLIENT_ID", CI_CLIENT_ID)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "ci-local-secret")
    with IdentityCredential(imds_probe=no_imds) as credential:
        token = credential.get_token(AUDIENCE)
    assert credential.source is not None
    assert credential.source.source == "environment"
    assert token.decode().app_id == CI_CLIENT_ID


def test_a_refused_source_is_reported_not_replaced_by_the_next(
    act_as: ActAs, monkeypatch: pytest.MonkeyPatch, stats: Stats
) -> None:
    act_as("aa-onboarding", "app-service")
    monkeypatch.setenv("AZURE_CLIENT_ID", CI_CLIENT_ID)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "not-the-secret")
    before = stats().get("mi:app-service", 0)
    with IdentityCredential(imds_probe=no_imds) as credential, \
            pytest.raises(TokenRequestError) as caught:
        credential.get_token(AUDIENCE)
    assert caught.value.args[0].startswith(f"environment: service principal {CI_CLIENT_ID}")
    assert "AADSTS7000215" in str(caught.value)
    assert "the client secret is wrong or expired" in str(caught.value)
    assert stats().get("mi:app-service", 0) == before, "the managed identity was tried too"


def test_the_source_override_wins_over_detection(
    act_as: ActAs, monkeypatch: pytest.MonkeyPatch, stats: Stats
) -> None:
    act_as("aa-onboarding", "app-service")
    monkeypatch.setenv("AZURE_CLIENT_ID", CI_CLIENT_ID)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "ci-local-secret")
    before = stats().get("mi:app-service", 0)
    with IdentityCredential(IdentitySettings(source="client-secret"),
                            imds_probe=no_imds) as credential:
        assert credential.get_token(AUDIENCE).decode().app_id == CI_CLIENT_ID
    assert stats().get("mi:app-service", 0) == before


def test_a_forced_source_that_is_not_here_says_so_and_tries_nothing_else(
    act_as: ActAs, stats: Stats
) -> None:
    act_as("aa-onboarding", "app-service")
    before = stats().get("mi:app-service", 0)
    credential = IdentityCredential(IdentitySettings(source="client-secret"),
                                    imds_probe=no_imds)
    with credential, pytest.raises(CredentialUnavailableError) as caught:
        credential.get_token(AUDIENCE)
    assert str(caught.value) == (
        "identity source 'client-secret' was chosen by the identity source setting (--source, "
        "TENANTOPS_IDENTITY__SOURCE or [identity] source), but it cannot be used here: "
        "AZURE_CLIENT_ID, AZURE_CLIENT_SECRET not set. Next: set what it needs, or choose "
        "another source.")
    assert stats().get("mi:app-service", 0) == before


def test_forcing_azure_cli_without_az_does_not_use_the_managed_identity(
    act_as: ActAs, stats: Stats
) -> None:
    act_as("aa-onboarding", "app-service")
    before = stats().get("mi:app-service", 0)
    with IdentityCredential(IdentitySettings(source="azure-cli")) as credential, \
            pytest.raises(CredentialUnavailableError, match="'az' not found on PATH"):
        credential.get_token(AUDIENCE)
    assert stats().get("mi:app-service", 0) == before


@pytest.mark.integration
def test_azure_cli_that_is_not_signed_in_could_not_even_try(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    az = bin_dir / "az"
    az.write_text("#!/bin/sh\necho \"ERROR: Please run 'az login' to setup account.\" >&2\n"
                  "exit 1\n")
    az.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    with IdentityCredential(imds_probe=no_imds) as credential, \
            pytest.raises(CredentialUnavailableError) as caught:
        credential.get_token(AUDIENCE)
    message = str(caught.value)
    assert message.startswith(f"azure-cli: 'az' found at {az}")
    assert "but it could not even try: Please run 'az login'" in message
    assert "Sources not present:\n  - environment:" in message


def test_an_object_id_cannot_name_a_service_principal() -> None:
    environ = {"AZURE_TENANT_ID": "t", "AZURE_CLIENT_SECRET": "s"}
    checks = check_sources(environ, identity=f"object_id={CI_CLIENT_ID}", imds_probe=no_imds)
    assert not checks[0].available
    assert checks[0].detail == (f"the identity setting names object_id={CI_CLIENT_ID}, but the "
                                "environment source names an app by its client ID")


def test_a_certificate_that_cannot_be_read_could_not_even_try(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", "8d6f5c2a-1b3e-4f70-9a6c-2e4b7d9f0a15")
    monkeypatch.setenv("AZURE_CLIENT_ID", CI_CLIENT_ID)
    monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PATH", str(tmp_path / "missing.pem"))
    with IdentityCredential(IdentitySettings(source="client-certificate"),
                            imds_probe=no_imds) as credential, \
            pytest.raises(CredentialUnavailableError) as caught:
        credential.get_token(AUDIENCE)
    message = str(caught.value)
    assert message.startswith(f"client-certificate: service principal {CI_CLIENT_ID} in tenant "
                              "8d6f5c2a-1b3e-4f70-9a6c-2e4b7d9f0a15 with a certificate "
                              "(AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_CERTIFICATE_PATH "
                              "set); the credential could not be created: ")
    assert message.endswith("Next: fix the setting it names.")


IMDS_ANSWERS = {
    "azure-imds-without-metadata-header": (400, "application/json", json.dumps(
        {"error": "bad_request_102", "error_description":
         "Required metadata header not specified"}), True),
    "proxy-refusal": (403, "text/plain", "resolve_deny: denied destination", False),
    "docker-desktop": (403, "text/plain", "connecting to 169.254.169.254:80: unreachable",
                       False),
    "other-cloud-metadata-service": (404, "text/html", "<html>404 - Not Found</html>", False),
    "json-without-error": (200, "application/json", "{\"ok\": true}", False),
}


@pytest.mark.parametrize("answer", IMDS_ANSWERS.values(), ids=IMDS_ANSWERS.keys())
def test_only_an_answer_shaped_like_azure_imds_counts_as_imds(
    answer: tuple[int, str, str, bool],
) -> None:
    status, kind, body, is_imds = answer
    asked: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return httpx.Response(status, headers={"Content-Type": kind}, text=body)

    reason = probe_imds(transport=httpx.MockTransport(handle))
    assert [str(r.url) for r in asked] == [
        "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01"]
    if is_imds:
        assert reason is None
    else:
        assert reason == (f"something answered at http://169.254.169.254, but not as Azure IMDS "
                          f"does (HTTP {status} {' '.join(body.split())[:80]!r}): this is not "
                          "an Azure VM")


def test_imds_that_does_not_answer_is_absent() -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    assert probe_imds(transport=httpx.MockTransport(hang)) == (
        "nothing answered at http://169.254.169.254 within 0.5 s (ConnectTimeout)")


def test_without_any_identity_the_cli_says_none_was_found_and_how_to_provide_one() -> None:
    """No runtime variables, no az: whatever answers at the link-local address on this machine
    (nothing, or a proxy), it is not Azure IMDS, and the message says so instead of blaming
    IMDS."""
    result = CliRunner().invoke(cli, ["auth", "token", "--resource", AUDIENCE.resource])
    assert result.exit_code == 1
    error = result.stderr
    assert error.startswith("error: no identity was found here, so there is no token to call the "
                            "API with.")
    assert "managed-identity: no Azure runtime variables set" in error
    for way in ("tenantops emulator env --identity", "AZURE_CLIENT_ID", "--identity <client-id>",
                "--source managed-identity", "az login"):
        assert way in error
    assert "refused" not in error
