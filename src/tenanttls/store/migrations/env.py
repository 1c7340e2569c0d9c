"""Alembic environment for the tenanttls store.

`tenanttls.store.db` passes an open connection in ``config.attributes["connection"]``.
Run from the command line, the URL comes from ``TENANTTLS_DATABASE_URL`` or from
``sqlalchemy.url`` in the configuration.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from tenanttls.store.schema import metadata

config = context.config


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table.
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return

    url = os.environ.get("TENANTTLS_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set TENANTTLS_DATABASE_URL or sqlalchemy.url to the database to migrate")
    engine = create_engine(url)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
