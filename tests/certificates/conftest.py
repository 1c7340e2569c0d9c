from __future__ import annotations

import pytest

from tenanttls.clock import ManualClock


@pytest.fixture
def engine(store):
    """The SQLAlchemy engine of a freshly migrated store (one per store backend)."""
    return store.engine


@pytest.fixture
def clock():
    return ManualClock()
