"""``runbooks/Onboard-Tenant.ps1`` cannot run here (no pwsh), so it is read with a real
PowerShell grammar (tree-sitter-powershell) and checked from its syntax tree: it parses
without errors, asks the App Service / Automation managed-identity endpoint for a token the
way onboard_tenant.py does (``IDENTITY_ENDPOINT``, ``X-IDENTITY-HEADER``,
``api-version=2019-08-01``, ``resource=`` the API's client ID), sends that token as a bearer
token to the API, and takes the same parameters as the Python runbook."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import tree_sitter_powershell
from tree_sitter import Language, Node, Parser, Tree

RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"
PS1 = RUNBOOKS / "Onboard-Tenant.ps1"
PY = RUNBOOKS / "onboard_tenant.py"

# PowerShell parameter -> the Python runbook's option, where the names are not simply kebab
RENAMED = {"TimeoutSeconds": "--timeout", "PollSeconds": "--poll-interval"}


@pytest.fixture(scope="module")
def tree() -> Tree:
    return Parser(Language(tree_sitter_powershell.language())).parse(PS1.read_bytes())


def text(node: Node) -> str:
    return (node.text or b"").decode()


def descendants(node: Node, type: str) -> Iterator[Node]:
    stack = [node]
    while stack:
        current = stack.pop()
        if current.type == type:
            yield current
        stack.extend(reversed(current.children))


def function(tree: Tree, name: str) -> Node:
    for node in descendants(tree.root_node, "function_statement"):
        if any(text(c) == name for c in node.children if c.type == "function_name"):
            return node
    raise AssertionError(f"no function {name} in {PS1.name}")


def assignment(scope: Node, variable: str) -> str:
    """The right-hand side of the first ``$variable = ...`` in ``scope``."""
    for node in descendants(scope, "assignment_expression"):
        target = node.children[0]
        if text(target).lower() == variable.lower():
            return text(node.children[-1])
    raise AssertionError(f"{variable} is never assigned")


def hash_entries(node: Node) -> dict[str, str]:
    entries: dict[str, str] = {}
    for entry in descendants(node, "hash_entry"):
        key = text(entry.children[0]).strip("\"'")
        value = next(c for c in entry.children if c.type == "pipeline")
        entries[key] = text(value)
    return entries


def test_the_runbook_parses_as_powershell(tree: Tree) -> None:
    assert not tree.root_node.has_error
    assert {text(c.children[1]) for c in descendants(tree.root_node, "function_statement")} \
        >= {"Get-ApiToken", "Invoke-Api"}


def identity_branch(tree: Tree) -> Node:
    """The branch of Get-ApiToken taken when IDENTITY_ENDPOINT and IDENTITY_HEADER are set."""
    for clause in descendants(function(tree, "Get-ApiToken"), "if_statement"):
        condition = next(c for c in clause.children if c.type == "pipeline")
        if "$env:IDENTITY_ENDPOINT" in text(condition) and \
                "$env:IDENTITY_HEADER" in text(condition):
            return next(c for c in clause.children if c.type == "statement_block")
    raise AssertionError("Get-ApiToken has no branch for IDENTITY_ENDPOINT/IDENTITY_HEADER")


def test_the_token_comes_from_identity_endpoint_with_the_identity_header(tree: Tree) -> None:
    branch = identity_branch(tree)

    query = assignment(branch, "$query")
    uri = assignment(branch, "$uri")
    headers = hash_entries(next(descendants(branch, "hash_literal_expression")))

    assert re.search(r"resource=\$\(\[uri\]::EscapeDataString\(\$Resource\)\)", query)
    assert "api-version=2019-08-01" in query
    assert uri.startswith('"$($env:IDENTITY_ENDPOINT)?$query')
    assert headers["X-IDENTITY-HEADER"] == "$env:IDENTITY_HEADER"


def test_the_request_goes_to_that_uri_with_those_headers(tree: Tree) -> None:
    body = function(tree, "Get-ApiToken")
    (call,) = [c for c in descendants(body, "command")
               if text(c).startswith("Invoke-WebRequest")]

    assert re.search(r"-Uri \$uri\b", text(call))
    assert re.search(r"-Headers \$headers\b", text(call))
    assert "-Method Get" in text(call)


def test_the_resource_asked_for_is_the_apis_client_id(tree: Tree) -> None:
    calls = [c for c in descendants(tree.root_node, "command")
             if text(c).startswith("Get-ApiToken")]

    assert calls, "Get-ApiToken is never called"
    assert all(re.search(r"-Resource \$ClientId\b", text(c)) for c in calls)
    assert assignment(tree.root_node, "$token").startswith("Get-ApiToken")


def test_the_api_is_called_with_the_token_as_a_bearer_token(tree: Tree) -> None:
    invoke = function(tree, "Invoke-Api")
    headers = hash_entries(next(descendants(invoke, "hash_literal_expression")))
    calls = [text(c) for c in descendants(tree.root_node, "command")
             if text(c).startswith("Invoke-Api")]

    assert headers["Authorization"] == '"Bearer $Token"'
    assert calls
    assert all(re.search(r"-Token \$token\b", c) for c in calls)
    assert any("-Uri \"$base/tenants\"" in c for c in calls)


def test_the_api_url_is_accepted_with_or_without_api(tree: Tree) -> None:
    values = [text(n.children[-1]) for n in descendants(tree.root_node, "assignment_expression")
              if text(n.children[0]) == "$base"]

    assert values == ["$ApiUrl.TrimEnd('/') -replace '/api$', ''", '"$base/api"']


def powershell_parameters(tree: Tree) -> dict[str, bool]:
    """The script's parameters: name -> mandatory."""
    block = next(c for c in tree.root_node.children if c.type == "param_block")
    found: dict[str, bool] = {}
    for parameter in descendants(block, "script_parameter"):
        name = next(c for c in parameter.children if c.type == "variable")
        found[text(name).lstrip("$")] = "Mandatory = $true" in text(parameter)
    return found


def python_options() -> dict[str, bool]:
    """The Python runbook's options: flag -> required."""
    options: dict[str, bool] = {}
    for node in ast.walk(ast.parse(PY.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            flag = node.args[0]
            assert isinstance(flag, ast.Constant)
            required = any(k.arg == "required" and isinstance(k.value, ast.Constant)
                           and k.value.value is True for k in node.keywords)
            options[str(flag.value)] = required
    return options


def kebab(name: str) -> str:
    return RENAMED.get(name) or "--" + re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def test_both_runbooks_take_the_same_parameters(tree: Tree) -> None:
    powershell = {kebab(name): mandatory for name, mandatory in
                  powershell_parameters(tree).items()}

    assert powershell == python_options()
