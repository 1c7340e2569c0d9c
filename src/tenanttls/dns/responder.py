"""The built-in server's message handling: authoritative answers and RFC 2136 updates.

`Responder.respond` takes one DNS message in wire format and returns the reply in
wire format. It checks TSIG (RFC 8945) when a key is configured: queries may be
unsigned, updates must be signed. Sockets are the job of `tenanttls.dns.server`.
"""

from __future__ import annotations

import logging

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.update

from tenanttls.dns.ratelimit import WarningLimiter
from tenanttls.dns.tsig import TsigKey
from tenanttls.dns.updates import apply_update
from tenanttls.dns.zone import Record, ZoneRecords

logger = logging.getLogger(__name__)

_MIN_UDP_SIZE = 512  # RFC 1035 section 4.2.1
_MAX_UDP_SIZE = 4096
_MAX_TCP_SIZE = 65535

_TSIG_FAILURES = (
    dns.message.UnknownTSIGKey,
    dns.tsig.BadKey,
    dns.tsig.BadAlgorithm,
    dns.tsig.BadSignature,
    dns.tsig.BadTime,
)


class Responder:
    """Answer queries for one zone from `ZoneRecords` and apply signed updates to it."""

    def __init__(self, zone: ZoneRecords, tsig: TsigKey | None = None) -> None:
        self._zone = zone
        self._tsig = tsig
        self._keyring = {dns.name.from_text(tsig.name): tsig.to_dnspython()} if tsig else None
        self._warnings = WarningLimiter()

    def respond(self, wire: bytes, peer: str, *, tcp: bool = False) -> bytes | None:
        """Return the reply to the message in `wire`, or None when it cannot be parsed at all.

        Over UDP (`tcp` false) a reply larger than the client's EDNS payload size,
        or 512 bytes without EDNS, is sent empty with the TC flag so the client
        retries over TCP.
        """
        try:
            message = dns.message.from_wire(wire, keyring=self._keyring)
        except _TSIG_FAILURES as error:
            return self._reply_tsig_failure(wire, error, peer)
        except dns.exception.DNSException as error:
            logger.info("dns message rejected: peer=%s error=%s", peer, error)
            return reply_error(wire, dns.rcode.FORMERR)

        if message.flags & dns.flags.QR:
            return None

        opcode = message.opcode()
        if opcode == dns.opcode.QUERY:
            reply = self._answer(message)
        elif opcode == dns.opcode.UPDATE:
            reply = self._update(message, peer)
        else:
            reply = dns.message.make_response(message)
            reply.set_rcode(dns.rcode.NOTIMP)
        return _to_wire(reply, _MAX_TCP_SIZE if tcp else _udp_limit(message))

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        reply = dns.message.make_response(query)
        if len(query.question) != 1:
            reply.set_rcode(dns.rcode.FORMERR)
            return reply

        question = query.question[0]
        qname = question.name.to_text(omit_final_dot=True).lower()
        if not _in_zone(qname, self._zone.zone) or question.rdclass not in (dns.rdataclass.IN, dns.rdataclass.ANY):
            reply.set_rcode(dns.rcode.REFUSED)
            return reply
        if question.rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            reply.set_rcode(dns.rcode.REFUSED)
            return reply

        reply.flags |= dns.flags.AA
        rtype = None if question.rdtype == dns.rdatatype.ANY else dns.rdatatype.to_text(question.rdtype)
        records = self._zone.records(qname, rtype)
        if records:
            reply.answer.extend(self._rrsets(question.name, records))
            self._add_glue(reply, records)
            return reply

        # No data: NODATA when the name exists, NXDOMAIN otherwise, with the SOA for negative caching.
        if not self._zone.name_exists(qname):
            reply.set_rcode(dns.rcode.NXDOMAIN)
        soa = self._zone.soa()
        negative_ttl = min(soa.ttl, int(soa.value.split()[-1]))
        reply.authority.extend(self._rrsets(self._zone.origin, [Record(soa.name, "SOA", negative_ttl, soa.value)]))
        return reply

    def _update(self, message: dns.message.Message, peer: str) -> dns.message.Message:
        reply = dns.message.make_response(message)
        key_name = message.keyname.to_text(omit_final_dot=True) if message.had_tsig and message.keyname else None
        if self._tsig is not None and not message.had_tsig:
            self._warn_rejected(peer, key_name, dns.rcode.NOTAUTH, "the update is not signed, and dns_tsig_key is set")
            reply.set_rcode(dns.rcode.NOTAUTH)
            return reply

        result = apply_update(self._zone, message, peer)
        if result.rcode != dns.rcode.NOERROR:
            self._warn_rejected(peer, key_name, result.rcode, result.reason or "")
        reply.set_rcode(result.rcode)
        return reply

    def _warn_rejected(self, peer: str, key_name: str | None, rcode: dns.rcode.Rcode, reason: str) -> None:
        """Log a rejected update at WARNING, one line per peer address, key and code each minute."""
        held_back = self._warnings.check(("update", _host(peer), key_name, rcode))
        if held_back is None:
            return
        logger.warning(
            "dns update rejected: peer=%s key=%s zone=%s rcode=%s reason=%s repeats_held_back=%d",
            peer, key_name or "-", self._zone.zone, dns.rcode.to_text(rcode), reason, held_back,
        )

    def _rrsets(self, owner: dns.name.Name, records: list[Record]) -> list[dns.rrset.RRset]:
        """Group `records` into RRsets owned by `owner` (the question's spelling of the name)."""
        rrsets: dict[str, dns.rrset.RRset] = {}
        for record in records:
            rrset = rrsets.get(record.rtype)
            if rrset is None:
                rrset = dns.rrset.RRset(owner, dns.rdataclass.IN, dns.rdatatype.from_text(record.rtype))
                rrsets[record.rtype] = rrset
            rrset.add(record.to_rdata(self._zone.origin), record.ttl)
        return list(rrsets.values())

    def _add_glue(self, reply: dns.message.Message, records: list[Record]) -> None:
        for record in records:
            if record.rtype != "NS":
                continue
            target = record.value.rstrip(".").lower()
            addresses = self._zone.records(target, "A")
            if addresses:
                reply.additional.extend(self._rrsets(dns.name.from_text(target), addresses))

    def _reply_tsig_failure(self, wire: bytes, error: Exception, peer: str) -> bytes | None:
        """Reply NOTAUTH with the TSIG error (RFC 8945 section 5.2) to a message whose TSIG failed."""
        try:
            message = dns.message.from_wire(wire, keyring=False)
        except dns.exception.DNSException:
            return None

        if isinstance(error, dns.tsig.BadSignature):
            tsig_error, error_name = dns.rcode.BADSIG, "BADSIG"
        elif isinstance(error, dns.tsig.BadTime):
            tsig_error, error_name = dns.rcode.BADTIME, "BADTIME"
        else:
            tsig_error, error_name = dns.rcode.BADKEY, "BADKEY"
        held_back = self._warnings.check(("tsig", _host(peer), str(message.keyname), error_name))
        if held_back is not None:
            logger.warning(
                "dns message rejected, TSIG failed: peer=%s key=%s tsig_error=%s repeats_held_back=%d",
                peer, message.keyname, error_name, held_back,
            )

        reply = dns.message.make_response(message)
        reply.set_rcode(dns.rcode.NOTAUTH)
        if message.keyname is None or message.keyalgorithm is None:
            return reply.to_wire()

        # After BADTIME the signature was valid, so the reply is signed with the real key.
        # After BADKEY or BADSIG, clients read the TSIG error before the MAC.
        # NOTE: RFC 8945 section 5.3.2 wants an empty MAC there, and this reply carries
        # a MAC made with a placeholder secret instead. dnspython and Knot's tools
        # report the TSIG error either way.
        if tsig_error == dns.rcode.BADTIME and self._tsig is not None:
            key = self._tsig.to_dnspython()
        else:
            key = dns.tsig.Key(message.keyname, b"\0" * 32, message.keyalgorithm)
        reply.use_tsig(key, message.keyname, tsig_error=tsig_error, algorithm=message.keyalgorithm)
        reply.request_mac = message.mac or b""
        try:
            return reply.to_wire()
        except NotImplementedError:
            reply.use_tsig(None)
            return reply.to_wire()


def _host(peer: str) -> str:
    """Return the address part of ``host:port``, so one client's requests share a rate-limit key."""
    return peer.rsplit(":", 1)[0]


def _in_zone(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)


def _to_wire(reply: dns.message.Message, max_size: int) -> bytes:
    """Render `reply`, answering with an empty, truncated (TC) reply when it exceeds `max_size`."""
    try:
        return reply.to_wire(max_size=max_size)
    except dns.exception.TooBig:
        reply.answer.clear()
        reply.authority.clear()
        reply.additional.clear()
        reply.flags |= dns.flags.TC
        return reply.to_wire()


def _udp_limit(query: dns.message.Message) -> int:
    """Return the reply size the client accepts over UDP: its EDNS payload size, or 512."""
    if query.edns >= 0:
        return max(_MIN_UDP_SIZE, min(query.payload, _MAX_UDP_SIZE))
    return _MIN_UDP_SIZE


def reply_error(wire: bytes, rcode: dns.rcode.Rcode) -> bytes | None:
    """Return an empty reply with `rcode` and the request's id, or None when even the header is short."""
    if len(wire) < 12:
        return None
    reply = dns.message.Message(id=int.from_bytes(wire[:2], "big"))
    reply.flags = dns.flags.QR
    reply.set_rcode(rcode)
    return reply.to_wire()
