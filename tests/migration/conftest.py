"""Run every test of this folder once per store backend (see tests/fixtures/store.py)."""

from __future__ import annotations

from tests.fixtures.store import backend_fixture

store_backend = backend_fixture()
