"""docs/attacks.md lists every attack the HTTP attack catalogue tries, and every test it names
exists."""

from __future__ import annotations

import re
from pathlib import Path

from tests.api.test_attacks import ATTACKS

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "attacks.md").read_text(encoding="utf-8")


def test_every_http_attack_is_in_the_catalogue() -> None:
    missing = [a.id for a in ATTACKS if f"`{a.id}`" not in DOC]
    assert missing == []


def test_every_test_the_catalogue_names_exists() -> None:
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("test_*.py"))
    named = set(re.findall(r"`(?:[\w/]+\.py::)?(test_\w+)", DOC))
    assert len(named) > 40
    assert sorted(n for n in named if f"def {n}(" not in sources) == []
