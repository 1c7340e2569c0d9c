"""The TXT lookup behind Graph's domain verify: a real DNS query against a given nameserver."""

from __future__ import annotations

import dns.exception
import dns.inet
import dns.resolver

DEFAULT_TIMEOUT = 3.0


class DnsLookupError(Exception):
    """The query itself failed (timeout, no response from the server). An absent record is not an error."""


def parse_nameserver(text: str) -> tuple[str, int]:
    """Return (address, port) from ``HOST:PORT``, ``HOST``, ``[IPv6]:PORT`` or a bare IPv6 address."""
    value = text.strip()
    if value.startswith("["):
        address, _, rest = value[1:].partition("]")
        port = rest.lstrip(":") or "53"
    elif value.count(":") == 1:
        address, port = value.split(":")
    else:
        address, port = value, "53"

    if not dns.inet.is_address(address) or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"invalid nameserver {text!r}: expected an IP address with an optional port, such as 127.0.0.1:5353")
    return address, int(port)


def lookup_txt(name: str, nameserver: str | None, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """Return the TXT strings published at `name` (character-strings of one record joined).

    Asks `nameserver` (``HOST:PORT``) directly, or the system's resolver when it is None.
    Returns an empty list for NXDOMAIN or no TXT records; raises `DnsLookupError` when
    the query fails.
    """
    if nameserver:
        resolver = dns.resolver.Resolver(configure=False)
        address, port = parse_nameserver(nameserver)
        resolver.nameservers = [address]
        resolver.port = port
    else:
        try:
            resolver = dns.resolver.Resolver()
        except dns.exception.DNSException as error:
            raise DnsLookupError(f"no nameserver configured for the TXT query for {name}: {error}") from error
    resolver.lifetime = timeout
    resolver.timeout = timeout

    try:
        answer = resolver.resolve(name, "TXT", raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return []
    except dns.exception.DNSException as error:
        raise DnsLookupError(f"the TXT query for {name} failed: {error}") from error

    if answer.rrset is None:
        return []
    return [b"".join(record.strings).decode("utf-8", errors="replace") for record in answer.rrset]
