"""What an identity platform's refusal means, and the next step, in words a person can act on.

Entra refuses with AADSTS codes; the App Service managed-identity endpoint hides them behind
``500 "An unexpected error occured while fetching the AAD Token."`` (shared reference §0). Where
the code is known (Entra's own answer, IMDS/Arc bodies, or the emulator's
``x-tenantops-diagnostic`` header) the explanation names that cause; for the vague 500 it names
both usual causes and how to tell them apart.
"""

from __future__ import annotations

import re

from tenantops.identity._runtimes import EndpointAnswer

__all__ = ["VAGUE_500", "aadsts_code", "explain_refusal", "role_assignment_fix"]

VAGUE_500 = "An unexpected error occured while fetching the AAD Token."
AZURE_CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
_CODE = re.compile(r"AADSTS(\d+)")
_APP_PAIR = re.compile(
    r"Application '(?P<caller>[0-9a-fA-F-]{36})'.*?application '(?P<api>[0-9a-fA-F-]{36})'")


def aadsts_code(text: str | None) -> int | None:
    """The first ``AADSTS<n>`` code in ``text``."""
    match = _CODE.search(text or "")
    return int(match.group(1)) if match else None


def role_assignment_fix(
    *,
    api: str | None,
    principal_object_id: str | None = None,
    principal_client_id: str | None = None,
    role: str | None = None,
) -> str:
    """The commands that give a managed identity (or app) an app role on the API.

    Known values are filled in; unknown ones are placeholders with the command that finds them.
    """
    api_id = api or "<api-client-id>"
    role_name = role or "<role, e.g. Tenants.Write>"
    if principal_object_id:
        principal = principal_object_id
        find_principal = ""
    else:
        principal = "<principal-sp-object-id>"
        lookup = principal_client_id or "<identity-client-id>"
        find_principal = (f"; <principal-sp-object-id> is "
                          f"$(az ad sp show --id {lookup} --query id -o tsv)")
    return (
        "assign an app role with "
        f"az rest -m POST -u https://graph.microsoft.com/v1.0/servicePrincipals/{principal}"
        f"/appRoleAssignments -b '{{\"principalId\":\"{principal}\",\"resourceId\":"
        f"\"<api-sp-object-id>\",\"appRoleId\":\"<role-id>\"}}' "
        f"(<api-sp-object-id> is $(az ad sp show --id {api_id} --query id -o tsv); <role-id> is "
        f"$(az ad sp show --id {api_id} --query \"appRoles[?value=='{role_name}'].id\" -o tsv)"
        f"{find_principal}), or in PowerShell New-MgServicePrincipalAppRoleAssignment "
        f"-ServicePrincipalId {principal} -PrincipalId {principal} "
        "-ResourceId <api-sp-object-id> -AppRoleId <role-id> (both forms name the identity's "
        "own service principal in the path: the assignment is made on the identity, for the "
        "API's role). A new assignment can take up to "
        "24 h to show in managed-identity tokens, because the endpoint caches tokens."
    )


def _wrong_resource(resource: str) -> str:
    return (
        f"Entra has no application whose client ID or App ID URI is {resource!r} "
        "(AADSTS500011). Ask for the API app registration's client ID (a GUID) or one of its "
        "App ID URIs such as api://<client-id>: not a delegated scope (api://<id>/<scope>), not "
        "a display name, not the API's URL. 'tenantops auth doctor <url>' reads the expected "
        "value from the API."
    )


def _not_assigned(text: str, api_hint: str | None) -> str:
    pair = _APP_PAIR.search(text)
    caller = pair.group("caller") if pair else None
    api = pair.group("api") if pair else api_hint
    return (
        "the identity holds no app role on the API, and the API's enterprise application "
        "requires assignment ('Assignment required?' = Yes), so Entra refuses to issue a token "
        "(AADSTS501051). Next: "
        + role_assignment_fix(api=api, principal_client_id=caller)
    )


def explain_refusal(
    text: str,
    *,
    resource: str,
    answer: EndpointAnswer | None = None,
    api_client_id: str | None = None,
    selector_from_azure_client_id: bool = False,
) -> str:
    """Meaning and next step for a token refusal whose words are ``text``.

    ``answer`` is the identity endpoint's own response when one was seen; its diagnostic
    header (emulator) is more precise than ``text`` and wins.
    """
    evidence = " ".join(p for p in (answer.diagnostic if answer else None,
                                    answer.message if answer else None, text) if p)
    code = aadsts_code(evidence)
    if code in {500011, 50001}:
        return _wrong_resource(resource)
    if code == 501051:
        return _not_assigned(evidence, api_client_id)
    if code == 1002012:
        return (f"the client-credentials flow needs a scope ending in /.default (AADSTS1002012); "
                f"ask for '{resource}/.default'.")
    if code in {7000215, 7000222}:
        return ("the client secret is wrong or expired (AADSTS" f"{code}). Set AZURE_CLIENT_SECRET "
                "to the secret's *value* (not its ID) from the app registration's "
                "'Certificates & secrets' page, or create a new one.")
    if code == 700016:
        return ("the application (AZURE_CLIENT_ID) does not exist in the tenant (AADSTS700016); "
                "check AZURE_CLIENT_ID and AZURE_TENANT_ID.")
    if code == 90002:
        return "the tenant does not exist (AADSTS90002); check AZURE_TENANT_ID."
    if code == 65001:
        return ("the Azure CLI is not consented to call this API (AADSTS65001). Add the Azure CLI "
                f"({AZURE_CLI_CLIENT_ID}) as an authorized client application on the API's "
                "'Expose an API' page, or use a managed identity or a service principal.")
    if code is not None:
        return (f"Entra refused with AADSTS{code}; look the code up at "
                f"https://login.microsoftonline.com/error?code={code}.")
    lowered = evidence.lower()
    if "unable to load the proper managed identity" in lowered:
        return ("the host has no system-assigned identity, or no identity matches the one "
                "requested. Enable the system-assigned identity, or name an attached "
                "user-assigned identity with --identity <client-id> (or AZURE_CLIENT_ID).")
    if "no user assigned" in lowered or "identity not found" in lowered:
        hint = (" AZURE_CLIENT_ID was used to name it, as azure-identity does; if that variable "
                "holds another app's client ID (the API's, say), unset it or pass --identity."
                if selector_from_azure_client_id else "")
        return ("no managed identity attached to this host matches the one requested. Check the "
                "identity's client ID / object ID / resource ID and that it is attached to this "
                f"resource (Identity blade).{hint}")
    if answer is not None and answer.status == 401 and "unauthorized" in lowered:
        return ("the endpoint refused the secret header. IDENTITY_HEADER / MSI_SECRET is stale "
                "or wrong (the platform rotates it); read it from the environment at call time.")
    if VAGUE_500.lower() in lowered:
        return (
            "the App Service identity endpoint hides Entra's answer behind this vague 500. It is "
            f"usually one of two things: (1) AADSTS500011, wrong resource: {resource!r} is not "
            "the API's client ID or App ID URI (a scope such as api://<id>/<scope> or a display "
            "name gives this); ask for the client ID or api://<client-id>. (2) AADSTS501051, "
            "the identity holds no app role while the API requires assignment; "
            + role_assignment_fix(api=api_client_id)
            + " To tell them apart, request a token for a resource that surely exists (e.g. "
            "https://management.azure.com/): if that works, check the resource value, then the "
            "role assignment."
        )
    return "no AADSTS code was given; 'tenantops auth doctor <url>' shows the endpoint's answer."
