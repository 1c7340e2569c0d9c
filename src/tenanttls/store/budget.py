"""A request budget kept in the store, so that every worker process draws from one bucket.

`StoreTokenBucket` has the interface of `tenanttls.transport.limits.TokenBucket`
(`rate`, `burst`, `acquire`), which keeps the budget of one process. This one keeps
the tokens in a row of the `request_budgets` table. Each `acquire` refills and takes a
token in one transaction: the row is locked with SELECT … FOR UPDATE on PostgreSQL, and
on SQLite the transaction holds the database's write lock from its start (BEGIN
IMMEDIATE). So ten workers together stay under the rate that one worker would keep.

Time comes from PostgreSQL's ``clock_timestamp()``, which is one clock for workers on
several hosts. SQLite serves one host, whose wall clock is used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from tenanttls.errors import Throttled
from tenanttls.store.schema import request_budgets

MICROSOFT_BUDGET = "microsoft"


class _Deadline(Protocol):
    def remaining(self) -> float: ...


@dataclass(frozen=True)
class Reservation:
    """A token taken from the bucket: when it is due (database time, seconds since the epoch) and how long to wait."""

    due_at: float
    wait: float


class StoreTokenBucket:
    """A token bucket in the store, shared by every process that uses the same database. Thread-safe.

    `rate` tokens per second refill the bucket, at most `burst` are stored. A caller
    that finds it empty reserves the next token and sleeps until it is due, so callers
    are served in the order their transactions commit. Processes that share a budget
    should give it the same `rate` and `burst`, because each refill uses the caller's.
    """

    def __init__(
        self,
        engine: Engine,
        rate: float,
        burst: int,
        *,
        name: str = MICROSOFT_BUDGET,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"invalid token bucket: rate={rate} burst={burst}; use rate > 0 and burst >= 1")
        self.engine = engine
        self.rate = rate
        self.burst = burst
        self.name = name
        self._sleep = sleep
        self._postgresql = engine.dialect.name == "postgresql"
        self._build_statements()
        self._create_row()

    def _build_statements(self) -> None:
        """Build the statements of `reserve` once, because it runs for every Microsoft request."""
        this_budget = request_budgets.c.name == bindparam("budget_name")
        self._select_row = select(request_budgets.c.tokens, request_budgets.c.updated_at).where(this_budget)
        if self._postgresql:
            self._select_row = self._select_row.with_for_update()
        self._update_row = (
            update(request_budgets)
            .where(this_budget)
            .values(tokens=bindparam("new_tokens"), updated_at=bindparam("new_updated_at"))
        )
        self._select_now = select(func.extract("epoch", func.clock_timestamp()))

    def _create_row(self) -> None:
        """Insert the budget's row, full, unless another process did already."""
        dialect = postgresql if self._postgresql else sqlite
        statement = (
            dialect.insert(request_budgets)
            .values(name=self.name, tokens=float(self.burst), updated_at=0.0)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        with self.engine.begin() as connection:
            now = self._now(connection)
            connection.execute(statement.values(updated_at=now))

    def _now(self, connection: Connection) -> float:
        if self._postgresql:
            return float(connection.execute(self._select_now).scalar_one())
        return time.time()

    def reserve(self, deadline: _Deadline | None = None, *, tenant: str | None = None, operation: str | None = None) -> Reservation:
        """Take one token and return when it is due, without sleeping.

        Raises `Throttled` (with the wait as `retry_after`) and takes nothing when the
        token would be due after `deadline`.
        """
        with self.engine.begin() as connection:
            row = connection.execute(self._select_row, {"budget_name": self.name}).one()
            now = self._now(connection)

            # A clock step backwards (another host's time on SQLite, NTP) refills nothing.
            elapsed = max(0.0, now - row.updated_at)
            tokens = min(float(self.burst), row.tokens + elapsed * self.rate)
            wait = max(0.0, (1.0 - tokens) / self.rate)
            if deadline is not None and wait > deadline.remaining():
                raise Throttled(
                    f"the shared request budget {self.name!r} of {self.rate:g} requests per second is used up "
                    f"for the next {wait:.1f}s, which is past the operation's deadline; retry the operation later",
                    retry_after=wait,
                    tenant=tenant,
                    operation=operation,
                )

            connection.execute(
                self._update_row,
                {"budget_name": self.name, "new_tokens": tokens - 1.0, "new_updated_at": max(now, row.updated_at)},
            )
        return Reservation(due_at=max(now, row.updated_at) + wait, wait=wait)

    def acquire(self, deadline: _Deadline | None = None, *, tenant: str | None = None, operation: str | None = None) -> float:
        """Take one token, sleeping until it is due, and return the seconds waited.

        Raises `Throttled` (with the wait as `retry_after`) and takes nothing when the
        token would be due after `deadline`.
        """
        reservation = self.reserve(deadline, tenant=tenant, operation=operation)
        if reservation.wait > 0:
            self._sleep(reservation.wait)
        return reservation.wait
