"""The built-in server's zone, kept in the ``dns_records`` table.

Names are stored absolute, lower case and without the final dot; values in DNS
presentation format (a TXT value keeps its quotes). The apex SOA and NS records
are rows too, so the whole zone lives in the store and survives restarts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.engine import Connection, Engine

from tenanttls.clock import Clock
from tenanttls.domain.names import validate_domain_name
from tenanttls.errors import DnsError
from tenanttls.store.schema import dns_records

logger = logging.getLogger(__name__)

APEX_TTL = 3600
# SOA timers (refresh, retry, expire, minimum) in seconds. The minimum is the
# negative-caching TTL (RFC 2308), kept short so a new challenge is seen quickly.
_SOA_TIMERS = "3600 600 604800 60"


@dataclass(frozen=True)
class Record:
    """One resource record of the zone."""

    name: str
    rtype: str
    ttl: int
    value: str

    def to_rdata(self, origin: dns.name.Name) -> dns.rdata.Rdata:
        """Return the record's data parsed from its presentation format."""
        return dns.rdata.from_text(dns.rdataclass.IN, self.rtype, self.value, origin=origin, relativize=False)


class ZoneRecords:
    """Read and change one zone's records in the ``dns_records`` table."""

    def __init__(self, engine: Engine, zone: str, clock: Clock) -> None:
        self.engine = engine
        self.zone = validate_domain_name(zone, what="DNS zone")
        self.origin = dns.name.from_text(self.zone)
        self._clock = clock

    def ensure_apex(self, nameserver: str, address: str) -> None:
        """Create the apex SOA, NS and the nameserver's A record unless the zone has an SOA."""
        with self.engine.begin() as connection:
            if self._soa_row(connection) is not None:
                return

            now = self._clock.now()
            serial = int(now.timestamp())
            soa = f"{nameserver}. hostmaster.{self.zone}. {serial} {_SOA_TIMERS}"
            for record in (
                Record(self.zone, "SOA", APEX_TTL, soa),
                Record(self.zone, "NS", APEX_TTL, f"{nameserver}."),
                Record(nameserver, "A", APEX_TTL, address),
            ):
                self._insert(connection, record, now)
        logger.info("dns zone created: zone=%s nameserver=%s", self.zone, nameserver)

    def records(self, name: str, rtype: str | None = None, connection: Connection | None = None) -> list[Record]:
        """Return the records at `name`, of type `rtype` when given."""
        condition = and_(dns_records.c.zone == self.zone, dns_records.c.name == name)
        if rtype is not None:
            condition = and_(condition, dns_records.c.rtype == rtype)
        query = select(dns_records).where(condition).order_by(dns_records.c.id)

        if connection is not None:
            rows = connection.execute(query).all()
        else:
            with self.engine.connect() as new_connection:
                rows = new_connection.execute(query).all()
        return [Record(row.name, row.rtype, row.ttl, row.value) for row in rows]

    def name_exists(self, name: str, connection: Connection | None = None) -> bool:
        """Return True when `name` owns records or is an empty non-terminal above names that do."""
        query = (
            select(dns_records.c.id)
            .where(dns_records.c.zone == self.zone)
            .where(or_(dns_records.c.name == name, dns_records.c.name.like(f"%.{_escape_like(name)}", escape="\\")))
            .limit(1)
        )
        if connection is not None:
            return connection.execute(query).first() is not None
        with self.engine.connect() as new_connection:
            return new_connection.execute(query).first() is not None

    def soa(self, connection: Connection | None = None) -> Record:
        """Return the zone's SOA record."""
        records = self.records(self.zone, "SOA", connection)
        if not records:
            raise DnsError(f"zone {self.zone} has no SOA record; start the built-in DNS server once to create it")
        return records[0]

    def add(self, connection: Connection, record: Record) -> bool:
        """Insert `record` unless the same record exists; return True when inserted."""
        if self._find_id(connection, record) is not None:
            return False
        self._insert(connection, record, self._clock.now())
        return True

    def delete_record(self, connection: Connection, record: Record) -> int:
        """Delete one record (name, type and value); return the number of rows deleted."""
        row_id = self._find_id(connection, record)
        if row_id is None:
            return 0
        return connection.execute(delete(dns_records).where(dns_records.c.id == row_id)).rowcount

    def delete_rrset(self, connection: Connection, name: str, rtype: str) -> int:
        """Delete every record of type `rtype` at `name`; return the number of rows deleted."""
        return connection.execute(
            delete(dns_records).where(
                dns_records.c.zone == self.zone, dns_records.c.name == name, dns_records.c.rtype == rtype
            )
        ).rowcount

    def bump_serial(self, connection: Connection) -> int:
        """Increase the SOA serial by one (RFC 1982 arithmetic) and return the new serial."""
        row = self._soa_row(connection)
        fields = row.value.split()
        serial = (int(fields[2]) + 1) % 2**32
        fields[2] = str(serial)
        connection.execute(update(dns_records).where(dns_records.c.id == row.id).values(value=" ".join(fields)))
        return serial

    def _soa_row(self, connection: Connection):
        return connection.execute(
            select(dns_records).where(
                dns_records.c.zone == self.zone, dns_records.c.name == self.zone, dns_records.c.rtype == "SOA"
            )
        ).first()

    def _find_id(self, connection: Connection, record: Record) -> int | None:
        """Return the row id of a record equal to `record` as DNS data (so case and quoting do not matter)."""
        expected = record.to_rdata(self.origin)
        for row in connection.execute(
            select(dns_records).where(
                dns_records.c.zone == self.zone,
                dns_records.c.name == record.name,
                dns_records.c.rtype == record.rtype,
            )
        ):
            if Record(row.name, row.rtype, row.ttl, row.value).to_rdata(self.origin) == expected:
                return row.id
        return None

    def _insert(self, connection: Connection, record: Record, now: datetime) -> None:
        connection.execute(
            dns_records.insert().values(
                zone=self.zone,
                name=record.name,
                rtype=record.rtype,
                ttl=record.ttl,
                value=record.value,
                created_at=now,
            )
        )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
