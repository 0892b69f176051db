"""The API tests' ``server`` fixture, reused for the browser tests."""

from __future__ import annotations

from tests.api.conftest import server

__all__ = ["server"]
