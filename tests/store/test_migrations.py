"""Schema revisions applied to a database that already contains data."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from tenanttls.store.db import MIGRATIONS_DIR, create_store_engine, open_store
from tenanttls.store.upgrades import get_upgrade

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)

# (state, last_error, resume_state, the stop_kind that revision 0005 fills in)
STOPPED_ROWS = [
    ("needs_attention", "consent is missing or was withdrawn (AADSTS65001: no consent)", "domain", "consent"),
    (
        "needs_attention",
        "tenant t: plan rejected by the safety gate: Exchange created connector 'C' disabled and does not allow "
        "enabling it; run 'tenanttls upgrade t --allow-disabled-connector' to wait for it",
        "connector",
        "connector_disabled",
    ),
    (
        "needs_attention",
        "tenant t: plan rejected by the safety gate: connector 'C-BACKUP' already exists with other settings; "
        "run 'tenanttls upgrade t --force-backup-overwrite' to replace it",
        "backup",
        "safety",
    ),
    ("needs_attention", "Graph failed GET /domains (gave up after 8 attempts; fix the cause)", "domain", "gave_up"),
    ("needs_attention", "Exchange denied New-InboundConnector for tenant t", "connector", "other"),
    ("needs_attention", None, "backup", "other"),
    ("grace", None, None, None),
]


def _config(connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _migrate(engine, revision: str, *, down: bool = False) -> None:
    with engine.begin() as connection:
        if down:
            command.downgrade(_config(connection), revision)
        else:
            command.upgrade(_config(connection), revision)


def _tenant_id(index: int) -> str:
    return f"00000000-0000-4000-8000-{index:012d}"


def _insert_rows(engine) -> None:
    """Insert one tenant per case of `STOPPED_ROWS`, with the columns of revision 0004."""
    metadata = sa.MetaData()
    tenants = sa.Table("tenants", metadata, autoload_with=engine)
    upgrades = sa.Table("upgrades", metadata, autoload_with=engine)
    with engine.begin() as connection:
        for index, (state, last_error, resume_state, _) in enumerate(STOPPED_ROWS):
            tenant_id = _tenant_id(index)
            connection.execute(
                tenants.insert().values(
                    tenant_id=tenant_id, initial_domain=f"t{index}.onmicrosoft.com", display_name="T", created_at=NOW
                )
            )
            connection.execute(
                upgrades.insert().values(
                    tenant_id=tenant_id, state=state, requested=True, attempts=0, last_error=last_error,
                    resume_state=resume_state, overrides={}, api_calls=0, state_entered_at=NOW, updated_at=NOW,
                    version=0,
                )
            )


def test_stop_kind_filled_from_message(store_url):
    engine = create_store_engine(store_url)
    _migrate(engine, "0004")
    _insert_rows(engine)
    engine.dispose()

    store = open_store(store_url, create=True)
    with store.engine.connect() as connection:
        kinds = [get_upgrade(connection, _tenant_id(index)).stop_kind for index in range(len(STOPPED_ROWS))]
    store.close()

    assert kinds == [expected for *_, expected in STOPPED_ROWS]


def _upgrade_columns_after_downgrade(store_url: str, revision: str) -> set[str]:
    """Migrate a new store to the head, downgrade it to `revision` and return the upgrades table's columns."""
    store = open_store(store_url, create=True)
    store.close()
    engine = create_store_engine(store_url)
    try:
        _migrate(engine, revision, down=True)
        return {column["name"] for column in sa.inspect(engine).get_columns("upgrades")}
    finally:
        engine.dispose()


def test_stop_kind_downgrade_drops_column(store_url):
    columns = _upgrade_columns_after_downgrade(store_url, "0004")

    assert "stop_kind" not in columns
    assert "drift_checked_at" in columns


def test_wait_reason_added_empty(store_url):
    engine = create_store_engine(store_url)
    _migrate(engine, "0005")
    _insert_rows(engine)
    engine.dispose()

    store = open_store(store_url, create=True)
    with store.engine.connect() as connection:
        reasons = [get_upgrade(connection, _tenant_id(index)).wait_reason for index in range(len(STOPPED_ROWS))]
    store.close()

    assert reasons == [None] * len(STOPPED_ROWS)


def test_wait_reason_downgrade_drops_column(store_url):
    columns = _upgrade_columns_after_downgrade(store_url, "0005")

    assert "wait_reason" not in columns
    assert "stop_kind" in columns
