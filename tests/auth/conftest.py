"""Fixtures of tests/auth (defined in support.py, shared with tests/api)."""

from __future__ import annotations

from tests.auth.support import attacker_key, foreign_emulator_server

__all__ = ["attacker_key", "foreign_emulator_server"]
