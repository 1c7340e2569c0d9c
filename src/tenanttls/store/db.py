"""Opening the store: engine creation, Alembic migrations and schema checks.

`open_store` is the one way in. With ``create=True`` (``tenanttls init``, the demo,
tests) it creates the database or migrates it to the current revision. Without it,
it checks that the database is at the revision this version of tenanttls expects,
and raises `StoreError` naming both revisions and the fix when it is not.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import QueuePool

from tenanttls.errors import StoreError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# SQLite waits this long for another writer's lock before raising "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000

URL_FORMS = "use 'sqlite:///PATH' or 'postgresql://USER:PASSWORD@HOST:PORT/DATABASE'"

# Connections the engine keeps open between transactions, so that a transaction reuses
# one instead of connecting again (and on SQLite running the PRAGMAs again). The pool
# opens a connection only when a thread needs one, so a worker keeps about as many as
# it runs threads at once. Up to POOL_OVERFLOW more are opened and closed for bursts.
POOL_SIZE = 32
POOL_OVERFLOW = 32

# PostgreSQL keeps the first 63 bytes of an application_name (NAMEDATALEN - 1) and drops the rest.
APPLICATION_NAME_MAX_BYTES = 63

# The role in this process's application_name (set by `set_process_role`); None: no role.
_process_role: str | None = None


@dataclass
class Store:
    """An open store: the engine plus the repositories the engine and the CLI use."""

    url: str
    engine: Engine
    revision: str

    @property
    def is_sqlite(self) -> bool:
        """True for a SQLite database, which has no row locks (claims use guarded updates)."""
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """Open a transaction for reads followed by writes; commit on success.

        On SQLite every transaction takes the write lock at its start (BEGIN IMMEDIATE),
        waiting up to the busy timeout for other writers. PostgreSQL uses its default
        isolation with row locks taken by the statements themselves.
        """
        with self.engine.begin() as connection:
            yield connection

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """Return the newest migration revision this version of tenanttls ships."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None, "the migrations folder has no revisions"
    return head


def set_process_role(role: str | None) -> None:
    """Name the PostgreSQL connections of the stores this process opens from now on after `role`.

    Each entry point calls it once, before it opens a store: ``worker``, ``relay``,
    ``portal``, ``dns`` or ``cli``. None restores the name without a role, ``tenanttls@HOST:PID``.
    """
    global _process_role
    _process_role = role


def application_name() -> str:
    """Return the name this process's PostgreSQL connections report: ``tenanttls-ROLE@HOST:PID``.

    HOST:PID is the start of a worker's lease owner, so a lease found in the store
    leads to the worker's connections in ``pg_stat_activity``. A long host name is
    shortened so that the name, pid included, fits in `APPLICATION_NAME_MAX_BYTES`.
    """
    prefix = f"tenanttls-{_process_role}" if _process_role else "tenanttls"
    host = socket.gethostname().encode("ascii", "replace").decode("ascii")
    suffix = f":{os.getpid()}"
    room = APPLICATION_NAME_MAX_BYTES - len(prefix) - 1 - len(suffix)
    return f"{prefix}@{host[:max(room, 0)]}{suffix}"


def create_store_engine(url: str) -> Engine:
    """Return an engine for `url`, with SQLite set up for several threads and processes.

    SQLite runs in WAL mode with a busy timeout, so the worker's threads, a second
    worker process and the CLI can share one file. Both backends keep up to
    `POOL_SIZE` connections open for reuse. PostgreSQL connections carry
    `application_name()` as libpq's ``fallback_application_name``, so an
    ``application_name`` in the URL's query or in ``PGAPPNAME`` still wins.
    """
    try:
        parsed = make_url(url)
        port = parsed.port
    except (ArgumentError, ValueError) as error:
        # SQLAlchemy reports a port that is not a number in int()'s words.
        reason = "the port is not a number" if "invalid literal for int()" in str(error) else str(error)
        raise StoreError(f"invalid database URL {_mask_password(url)!r}: {reason}; {URL_FORMS}") from error

    # libpq accepts postgres:// as well as postgresql://, but SQLAlchemy accepts only the second.
    if parsed.drivername in ("postgres", "postgresql") or parsed.drivername.startswith("postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(
            f"invalid database URL {safe_url(url)}: the database {parsed.get_backend_name()!r} is not supported, "
            f"only SQLite and PostgreSQL; {URL_FORMS}"
        )
    if port is not None and not 0 < port < 65536:
        raise StoreError(f"invalid database URL {safe_url(url)}: port {port} is out of range (1 to 65535); {URL_FORMS}")

    if parsed.get_backend_name() != "sqlite":
        if "fallback_application_name" not in parsed.query:
            parsed = parsed.update_query_dict({"fallback_application_name": application_name()})
        return create_engine(parsed, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)

    database = parsed.database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        parsed,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        poolclass=QueuePool,
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
    )
    event.listen(engine, "connect", _configure_sqlite)
    event.listen(engine, "begin", _begin_sqlite)
    return engine


def _begin_sqlite(connection) -> None:
    """Start every SQLite transaction with BEGIN IMMEDIATE.

    A deferred transaction that reads and then writes fails at once with "database
    is locked" when another writer committed in between, because SQLite in WAL mode
    does not wait in that case. Taking the write lock at the start makes the busy
    timeout apply instead. Readers of other connections are not blocked (WAL); the
    cost is that transactions of this engine run one at a time.
    """
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _configure_sqlite(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # autocommit at the driver; SQLAlchemy's "begin" event starts transactions
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL survives a crash of the process without losing commits. A power
    # loss may drop the last commits, which the idempotent steps then repeat.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def current_revision(engine: Engine) -> str | None:
    """Return the database's Alembic revision, or None for a database never migrated."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def open_store(url: str, *, create: bool = False) -> Store:
    """Open the store at `url`, migrating it first when `create` is true.

    Raises `StoreError` when the database cannot be reached, when it was never
    initialised (and `create` is false), or when it is at a revision this version
    does not know, such as one written by a newer tenanttls.
    """
    _check_sqlite_file(url, create=create)
    engine = create_store_engine(url)
    try:
        revision = _check_or_migrate(engine, url, create=create)
    except SQLAlchemyError as error:
        engine.dispose()
        raise StoreError(
            f"cannot open the database {safe_url(url)}: {driver_message(error)}; check the host, port, user, "
            "password and database name in database_url (create a missing PostgreSQL database with createdb)"
        ) from error
    except StoreError:
        engine.dispose()
        raise
    return Store(url=url, engine=engine, revision=revision)


def _check_sqlite_file(url: str, *, create: bool) -> None:
    """Raise `StoreError` for a missing SQLite file unless `create`, so that a typo creates no file."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return  # create_store_engine reports the invalid URL
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or create or not database or database == ":memory:":
        return
    if not Path(database).exists():
        raise StoreError(f"the database {database} does not exist; run 'tenanttls init' (or check --data and database_url)")


def _check_or_migrate(engine: Engine, url: str, *, create: bool) -> str:
    head = head_revision()
    script = ScriptDirectory.from_config(_alembic_config())
    current = current_revision(engine)

    if current is not None and _unknown(script, current):
        raise StoreError(
            f"the database {safe_url(url)} is at schema revision {current}, which this version of "
            f"tenanttls does not know (it expects {head}); the database was written by a newer "
            "tenanttls: upgrade tenanttls, or point --data/database_url at another database"
        )

    if current == head:
        return head

    if not create:
        if current is None:
            raise StoreError(f"the database {safe_url(url)} is not initialised; run 'tenanttls init' first")
        raise StoreError(
            f"the database {safe_url(url)} is at schema revision {current}, older than this "
            f"version's {head}; run 'tenanttls init' to migrate it"
        )

    _migrate(engine)
    logger.info("store migrated: url=%s from=%s to=%s", safe_url(url), current, head)
    return head


def _unknown(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is None
    except Exception:  # alembic raises several CommandError/ResolutionError types for an unknown id
        return True


def _migrate(engine: Engine) -> None:
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def safe_url(url: str) -> str:
    """Return `url` with any password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _mask_password(url)


def _mask_password(text: str) -> str:
    """Return `text` with the password of any ``scheme://user:password@host`` part masked, even in a malformed URL."""
    return re.sub(r"(//[^:/@\s]*:)[^@\s]*@", r"\1***@", text)


def driver_message(error: SQLAlchemyError) -> str:
    """Return the database driver's own message, without SQLAlchemy's class names and help link."""
    original = getattr(error, "orig", None)
    text = str(original if original is not None else error)
    return " ".join(text.split())
