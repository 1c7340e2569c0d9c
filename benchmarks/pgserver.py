"""A throw-away PostgreSQL 15 server on 127.0.0.1 for the benchmarks, from Debian's binaries.

Like the tests' server: initdb in a temporary folder owned by the ``postgres`` user
(initdb refuses to run as root), a free port, and fsync off, so the figures measure
tenanttls and not the disk. Install the binaries with ``apt-get install postgresql-15``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from benchdata import finish, print_note

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _run_as_postgres(*command: str) -> subprocess.CompletedProcess[str]:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120)


class PostgresServer:
    """Start with `start()`, create databases with `create_database()`, stop with `stop()`."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tenanttls-bench-pg-"))
        self.data_dir = self.root / "data"
        self.port = 0

    def start(self) -> "PostgresServer":
        print_note(f"PostgreSQL data folder: {self.root}")
        if not (PG_BIN / "initdb").exists():
            raise SystemExit(f"PostgreSQL 15 binaries not found in {PG_BIN}; install them with: apt-get install postgresql-15")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        initdb = _run_as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "-A", "trust",
                                  "-E", "UTF8", "--no-locale", "--no-sync")
        if initdb.returncode != 0:
            raise SystemExit(f"initdb failed: {initdb.stderr.strip()}")

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        started = _run_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-w", "-l", str(self.root / "server.log"),
                                   "-o", options, "start")
        if started.returncode != 0:
            raise SystemExit(f"PostgreSQL did not start: {started.stderr.strip()}")
        return self

    def url(self, database: str = "postgres") -> str:
        """Return the SQLAlchemy URL (psycopg 3) of `database`."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        import sqlalchemy

        admin = sqlalchemy.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
        return self.url(name)

    def stop(self, *, keep: bool = False, failed: bool = False) -> None:
        """Stop the server, then remove its folder unless `keep` or `failed` is true."""
        _run_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
        finish(self.root, keep=keep, failed=failed, label="PostgreSQL data folder")
