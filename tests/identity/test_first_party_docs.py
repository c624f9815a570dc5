"""docs/identity.md prints the first-party list; this keeps the page and the code in step."""

from __future__ import annotations

from pathlib import Path

from tenantops.first_party import FIRST_PARTY_RESOURCES

DOC = Path(__file__).resolve().parents[2] / "docs" / "identity.md"
START = "<!-- first-party table: generated from tenantops.first_party; keep in step -->\n"
END = "<!-- end first-party table -->"


def render() -> str:
    lines = ["| Service | Resource URIs (every cloud) | Application IDs | A token for it |",
             "|---|---|---|---|"]
    for resource in FIRST_PARTY_RESOURCES:
        uris = "<br>".join(f"`{u}`" for u in resource.resources) or "(none)"
        ids = "<br>".join(f"`{i}`" for i in resource.app_ids) or "(none)"
        lines.append(f"| {resource.name} | {uris} | {ids} | {resource.grants} |")
    lines.append("| any GUID `0000000x-0000-0000-c000-000000000000` or "
                 "`0000000x-0000-0ff1-ce00-000000000000` | | (reserved for Microsoft) | "
                 "a token for one of Microsoft's own services |")
    return "\n".join(lines) + "\n"


def test_the_documented_first_party_table_is_the_one_in_the_code() -> None:
    text = DOC.read_text(encoding="utf-8")
    documented = text[text.index(START) + len(START):text.index(END)]
    assert documented == render()
