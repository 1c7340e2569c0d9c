"""RFC 2136 dynamic updates applied to the built-in server's zone.

Only TXT records may be added or deleted: the apex SOA and NS records and the
nameserver's address belong to the server. A whole update is one database
transaction, so it applies completely or not at all (RFC 2136 section 3.4).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from sqlalchemy.engine import Connection

from tenanttls.dns.zone import Record, ZoneRecords

logger = logging.getLogger(__name__)

UPDATABLE_TYPES = frozenset({"TXT"})


@dataclass(frozen=True)
class UpdateResult:
    """The response code of an update and, when it was rejected, the reason."""

    rcode: dns.rcode.Rcode
    reason: str | None = None


class _Reject(Exception):
    """Stop processing an update with the given response code."""

    def __init__(self, rcode: dns.rcode.Rcode, reason: str) -> None:
        super().__init__(reason)
        self.rcode = rcode


def apply_update(zone: ZoneRecords, message: dns.message.Message, peer: str) -> UpdateResult:
    """Check the zone and prerequisite sections of `message`, then apply its update section.

    Returns NOERROR when applied. Otherwise it returns the code RFC 2136 names for
    the first failed check (NOTAUTH, NOTZONE, FORMERR, NXDOMAIN, YXDOMAIN, NXRRSET,
    YXRRSET, REFUSED) with the reason, and nothing is changed. The caller logs
    rejections.
    """
    try:
        _check_zone_section(zone, message)
        with zone.engine.begin() as connection:
            for rrset in message.sections[1]:
                _check_prerequisite(zone, connection, rrset)

            changes = sum(_apply(zone, connection, rrset) for rrset in message.sections[2])
            if changes:
                serial = zone.bump_serial(connection)
            else:
                serial = None
    except _Reject as rejection:
        return UpdateResult(rejection.rcode, str(rejection))

    logger.info("dns update applied: peer=%s zone=%s changes=%d serial=%s", peer, zone.zone, changes, serial)
    return UpdateResult(dns.rcode.NOERROR)


def _check_zone_section(zone: ZoneRecords, message: dns.message.Message) -> None:
    zone_section = message.sections[0]
    if len(zone_section) != 1 or zone_section[0].rdtype != dns.rdatatype.SOA:
        raise _Reject(dns.rcode.FORMERR, "the zone section must hold exactly one SOA question")

    name = _name(zone_section[0].name)
    if name != zone.zone:
        raise _Reject(dns.rcode.NOTAUTH, f"this server is not authoritative for zone {name!r}")


def _check_prerequisite(zone: ZoneRecords, connection: Connection, rrset: dns.rrset.RRset) -> None:
    """Raise `_Reject` unless the prerequisite `rrset` is met (RFC 2136 section 3.2)."""
    name = _name_in_zone(zone, rrset)
    if rrset.ttl != 0:
        raise _Reject(dns.rcode.FORMERR, f"prerequisite for {name} has a TTL other than 0")

    any_type = rrset.rdtype == dns.rdatatype.ANY
    rtype = None if any_type else dns.rdatatype.to_text(rrset.rdtype)

    if rrset.deleting == dns.rdataclass.ANY:
        if any_type and not zone.records(name, None, connection):
            raise _Reject(dns.rcode.NXDOMAIN, f"name {name} is not in use")
        if not any_type and not zone.records(name, rtype, connection):
            raise _Reject(dns.rcode.NXRRSET, f"no {rtype} records at {name}")
        return

    if rrset.deleting == dns.rdataclass.NONE:
        if any_type and zone.records(name, None, connection):
            raise _Reject(dns.rcode.YXDOMAIN, f"name {name} is in use")
        if not any_type and zone.records(name, rtype, connection):
            raise _Reject(dns.rcode.YXRRSET, f"{rtype} records exist at {name}")
        return

    # Value-dependent: the RRset must exist with exactly these records.
    existing = {record.to_rdata(zone.origin) for record in zone.records(name, rtype, connection)}
    if existing != set(rrset):
        raise _Reject(dns.rcode.NXRRSET, f"the {rtype} records at {name} differ from the prerequisite")


def _apply(zone: ZoneRecords, connection: Connection, rrset: dns.rrset.RRset) -> int:
    """Apply one RRset of the update section (RFC 2136 section 3.4.2); return the rows changed."""
    name = _name_in_zone(zone, rrset)
    any_type = rrset.rdtype == dns.rdatatype.ANY
    rtype = dns.rdatatype.to_text(rrset.rdtype)

    if rrset.deleting == dns.rdataclass.ANY and any_type:
        # "Delete all RRsets from a name": only the updatable types are ours to delete.
        return sum(zone.delete_rrset(connection, name, updatable) for updatable in UPDATABLE_TYPES)

    if rtype not in UPDATABLE_TYPES:
        raise _Reject(
            dns.rcode.REFUSED,
            f"updates of {rtype} records are not allowed: this server accepts updates of "
            f"{', '.join(sorted(UPDATABLE_TYPES))} records only",
        )

    if rrset.deleting == dns.rdataclass.ANY:
        return zone.delete_rrset(connection, name, rtype)

    if rrset.deleting == dns.rdataclass.NONE:
        return sum(zone.delete_record(connection, Record(name, rtype, 0, rdata.to_text())) for rdata in rrset)

    if rrset.rdclass != dns.rdataclass.IN:
        raise _Reject(dns.rcode.FORMERR, f"record class {dns.rdataclass.to_text(rrset.rdclass)} is not IN")
    return sum(zone.add(connection, Record(name, rtype, rrset.ttl, rdata.to_text())) for rdata in rrset)


def _name_in_zone(zone: ZoneRecords, rrset: dns.rrset.RRset) -> str:
    name = _name(rrset.name)
    if name != zone.zone and not name.endswith("." + zone.zone):
        raise _Reject(dns.rcode.NOTZONE, f"name {name} is outside zone {zone.zone}")
    return name


def _name(name) -> str:
    return name.to_text(omit_final_dot=True).lower()
