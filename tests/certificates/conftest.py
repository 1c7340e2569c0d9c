from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from tenanttls.clock import ManualClock
from tenanttls.store import schema


@pytest.fixture
def engine(tmp_path):
    """A store in a temporary SQLite file with every table created."""
    engine = create_engine(f"sqlite:///{tmp_path / 'tenanttls.db'}")
    schema.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clock():
    return ManualClock()
