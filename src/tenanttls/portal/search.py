"""The fleet search: prefix ranges over indexed lower-case columns, merged by initial domain.

A search text matches the start of a tenant's initial domain, of its unique name or of
its tenant id (all stored in lower case). Each of the three is a range over its own
unique index, queried on its own:

1. Each branch returns at most one page of ``(initial_domain, tenant_id)`` pairs in
   domain order. The domain branch walks the domain index and stops after a page. The
   other two sort only the pairs they find, without the joined columns.
2. The pages are merged in Python, and the full rows are read for the page's ids.

The count of matches is capped at `COUNT_CAP`: a broad prefix such as ``customer`` matches
most of the fleet, and counting it exactly would read every row. One query that ORs the
three ranges, or an ``IN`` over their union, makes SQLite read every match instead:
1 to 3 s for ``customer`` at 100,000 tenants (benchmarks/portal_bench.py).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import and_, func, select, union
from sqlalchemy.engine import Connection

from tenanttls.domain.names import is_guid
from tenanttls.store.schema import identities, tenants, upgrades

# Above this many matches, the fleet page shows "More than 1,000 tenants match".
COUNT_CAP = 1000
# The highest code point, appended to a prefix to build the range [prefix, prefix + U+10FFFF).
_MAX_CHARACTER = "\U0010ffff"
# Tenant ids are stored as lower-case GUIDs, so other text cannot start one.
_TENANT_ID_PREFIX = re.compile(r"^[0-9a-f-]+$")


def prefix_range(column, prefix: str):
    """Return the condition `column` starts with `prefix`, as a range an index can serve."""
    return and_(column >= prefix, column < prefix + _MAX_CHARACTER)


def branches(text: str) -> list[Any]:
    """Return one condition on `tenants` per searched column; each is served by its own index."""
    if is_guid(text):
        return [tenants.c.tenant_id == text]

    found = [
        prefix_range(tenants.c.initial_domain, text),
        tenants.c.tenant_id.in_(select(identities.c.tenant_id).where(prefix_range(identities.c.name, text))),
    ]
    if _TENANT_ID_PREFIX.match(text):
        found.append(prefix_range(tenants.c.tenant_id, text))
    return found


def _keys(condition: Any, state_condition: Any | None):
    """Return the ``(initial_domain, tenant_id)`` query of one branch, with the state filter when given."""
    source = tenants if state_condition is None else tenants.join(upgrades, upgrades.c.tenant_id == tenants.c.tenant_id)
    statement = select(tenants.c.initial_domain, tenants.c.tenant_id).select_from(source).where(condition)
    return statement if state_condition is None else statement.where(state_condition)


def page_ids(connection: Connection, text: str, state_condition: Any | None, after: str | None, limit: int) -> list[str]:
    """Return the ids of up to `limit` matching tenants after the domain `after`, in domain order."""
    found: dict[str, str] = {}
    for condition in branches(text):
        statement = _keys(condition, state_condition).order_by(tenants.c.initial_domain).limit(limit)
        if after:
            statement = statement.where(tenants.c.initial_domain > after)
        for domain, tenant_id in connection.execute(statement).all():
            found[tenant_id] = domain
    return sorted(found, key=found.__getitem__)[:limit]


def count_matches(connection: Connection, text: str, state_condition: Any | None) -> tuple[int, bool]:
    """Return the number of matching tenants and whether it was capped at `COUNT_CAP`.

    Each branch is counted up to the cap first. Only when all are under it does the
    exact count of their union run, which reads at most three times the cap rows.
    """
    statements = [_keys(condition, state_condition) for condition in branches(text)]
    for statement in statements:
        capped = select(func.count()).select_from(statement.limit(COUNT_CAP + 1).subquery())
        if connection.execute(capped).scalar_one() > COUNT_CAP:
            return COUNT_CAP, True

    matching = union(*statements).subquery() if len(statements) > 1 else statements[0].subquery()
    return connection.execute(select(func.count()).select_from(matching)).scalar_one(), False
