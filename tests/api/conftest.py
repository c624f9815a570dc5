"""Fixtures of tests/api (defined in tests/auth/support.py)."""

from __future__ import annotations

from tests.auth.support import attacker_key, foreign_emulator_server

__all__ = ["attacker_key", "foreign_emulator_server"]
