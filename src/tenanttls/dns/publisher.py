"""Publishing TXT records in the provider's zone by RFC 2136 dynamic update.

Two kinds of TXT records go into the zone: Microsoft's domain proof ``MS=ms…`` at
the unique name, and ACME DNS-01 challenges at ``_acme-challenge.<name>``. Records
are always added, never replaced, so two challenges for one name coexist (an
order for a name and its wildcard, or two orders at once).

Errors (all `DnsError`):
    "DNS server refused the update: …"   NOTAUTH, REFUSED, or a TSIG error (BADKEY, BADSIG, BADTIME)
    "DNS server … timed out / unreachable"   network failures after the retries
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from typing import Callable, Protocol

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.tsig
import dns.update

from tenanttls.config import Settings
from tenanttls.dns.tsig import TsigKey
from tenanttls.domain.names import validate_domain_name
from tenanttls.errors import ConfigurationError, DnsError, InvalidInput

logger = logging.getLogger(__name__)

_REFUSALS = {dns.rcode.NOTAUTH, dns.rcode.REFUSED, dns.rcode.NOTZONE}
_TSIG_REFUSALS = {
    dns.tsig.PeerBadKey: "BADKEY (the server does not know this key name and algorithm)",
    dns.tsig.PeerBadSignature: "BADSIG (the TSIG secret differs from the server's)",
    dns.tsig.PeerBadTime: "BADTIME (the clocks of this host and the server differ)",
    dns.tsig.PeerBadTruncation: "BADTRUNC",
}
_MAX_TXT_STRING = 255  # RFC 1035 section 3.3: one character-string is at most 255 bytes


class DnsPublisher(Protocol):
    """Publishes and removes TXT records in the provider's zone."""

    def add_txt(self, fqdn: str, value: str, ttl: int = 60) -> None:
        """Add one TXT record, keeping any others at `fqdn`."""
        ...

    def remove_txt(self, fqdn: str, value: str) -> None:
        """Remove the TXT record with `value` at `fqdn`; removing an absent record is not an error."""
        ...

    def wait_until_visible(self, fqdn: str, value: str, timeout: float) -> None:
        """Return once the authoritative server answers with the record, or raise `DnsError` after `timeout` seconds."""
        ...


class Rfc2136Publisher:
    """A `DnsPublisher` that sends RFC 2136 updates, signed with TSIG, to the zone's primary server.

    Updates and the checks of `wait_until_visible` go over TCP to ``server_host:server_port``.
    """

    def __init__(
        self,
        server_host: str,
        server_port: int,
        zone: str,
        tsig: TsigKey | None,
        *,
        timeout: float = 10.0,
        attempts: int = 3,
        poll_interval: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.server = _resolve_host(server_host)
        self.port = _check_port(server_port)
        try:
            self.zone = validate_domain_name(zone, what="DNS zone")
        except InvalidInput as error:
            raise ConfigurationError(str(error)) from error
        self.origin = dns.name.from_text(self.zone)
        self._tsig = tsig
        self._timeout = timeout
        self._attempts = max(1, attempts)
        self._poll_interval = poll_interval
        self._sleep = sleep

    def __repr__(self) -> str:
        key = self._tsig.name if self._tsig else None
        return f"Rfc2136Publisher(server={self.server}:{self.port}, zone={self.zone}, tsig_key={key})"

    def add_txt(self, fqdn: str, value: str, ttl: int = 60) -> None:
        """Add the TXT record `value` at `fqdn` without touching other records there."""
        name = self._relative(fqdn)
        update = self._new_update()
        update.add(name, ttl, _txt(value))
        self._send(update, "add", fqdn)
        logger.info("dns record added: fqdn=%s type=TXT server=%s:%d", fqdn, self.server, self.port)

    def remove_txt(self, fqdn: str, value: str) -> None:
        """Remove the TXT record `value` at `fqdn`, leaving other TXT records there."""
        name = self._relative(fqdn)
        update = self._new_update()
        update.delete(name, _txt(value))
        self._send(update, "remove", fqdn)
        logger.info("dns record removed: fqdn=%s type=TXT server=%s:%d", fqdn, self.server, self.port)

    def wait_until_visible(self, fqdn: str, value: str, timeout: float) -> None:
        """Poll the server until its answer for `fqdn` TXT includes `value`."""
        self._wait(fqdn, value, timeout, present=True)

    def wait_until_absent(self, fqdn: str, value: str, timeout: float) -> None:
        """Poll the server until its answer for `fqdn` TXT no longer includes `value`."""
        self._wait(fqdn, value, timeout, present=False)

    def lookup_txt(self, fqdn: str) -> list[str]:
        """Return the TXT values the server has at `fqdn` (each record's strings joined)."""
        return lookup_txt(self.server, self.port, fqdn, timeout=self._timeout)

    def _wait(self, fqdn: str, value: str, timeout: float, *, present: bool) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if (value in self.lookup_txt(fqdn)) == present:
                return
            if time.monotonic() >= deadline:
                state = "visible" if present else "gone"
                raise DnsError(
                    f"TXT record at {fqdn} is not {state} on {self.server}:{self.port} after {timeout:g} s; "
                    "check that the server is the zone's primary and applies updates at once"
                )
            self._sleep(self._poll_interval)

    def _relative(self, fqdn: str) -> dns.name.Name:
        """Return `fqdn` relative to the zone, or raise `InvalidInput` when it lies outside it."""
        try:
            name = dns.name.from_text(fqdn.strip().rstrip(".") + ".")
        except dns.exception.DNSException as error:
            raise InvalidInput(f"invalid DNS name {fqdn!r}: {error}") from error
        if not name.is_subdomain(self.origin):
            raise InvalidInput(f"DNS name {fqdn!r} is outside zone {self.zone}; publish only names under it")
        return name.relativize(self.origin)

    def _new_update(self) -> dns.update.UpdateMessage:
        if self._tsig is None:
            return dns.update.UpdateMessage(self.origin)
        key = self._tsig.to_dnspython()
        return dns.update.UpdateMessage(self.origin, keyring=key, keyname=key.name, keyalgorithm=key.algorithm)

    def _send(self, update: dns.update.UpdateMessage, action: str, fqdn: str) -> None:
        """Send `update` over TCP, retrying network failures; raise `DnsError` on refusal or failure."""
        for attempt in range(1, self._attempts + 1):
            try:
                response = dns.query.tcp(update, self.server, timeout=self._timeout, port=self.port)
                break
            except tuple(_TSIG_REFUSALS) as error:
                raise DnsError(
                    f"DNS server refused the update: {_TSIG_REFUSALS[type(error)]}; {action} TXT {fqdn} "
                    f"at {self.server}:{self.port}; check dns_tsig_key against the server's key"
                ) from error
            except (dns.exception.Timeout, OSError, EOFError) as error:
                if attempt == self._attempts:
                    raise DnsError(
                        f"DNS server {self.server}:{self.port} unreachable or timed out after {attempt} attempts "
                        f"({error or type(error).__name__}); {action} TXT {fqdn} not done; check dns_server"
                    ) from error
                logger.warning(
                    "dns update retry: fqdn=%s server=%s:%d attempt=%d error=%s",
                    fqdn, self.server, self.port, attempt, error or type(error).__name__,
                )
                self._sleep(min(2.0, 0.25 * 2**attempt))
            except dns.exception.DNSException as error:
                raise DnsError(
                    f"DNS server {self.server}:{self.port} sent an invalid reply to {action} TXT {fqdn}: {error}"
                ) from error

        rcode = response.rcode()
        if rcode in _REFUSALS:
            raise DnsError(
                f"DNS server refused the update: {dns.rcode.to_text(rcode)}; {action} TXT {fqdn} at "
                f"{self.server}:{self.port}; check dns_tsig_key and the server's update policy for zone {self.zone}"
            )
        if rcode != dns.rcode.NOERROR:
            raise DnsError(
                f"DNS update failed with {dns.rcode.to_text(rcode)}: {action} TXT {fqdn} at {self.server}:{self.port}"
            )


def lookup_txt(server: str, port: int, fqdn: str, *, timeout: float = 5.0) -> list[str]:
    """Query `server` directly (over TCP) for the TXT records at `fqdn` and return their values.

    Raises `DnsError` when the query fails. NXDOMAIN and NODATA give an empty list.
    """
    query = dns.message.make_query(fqdn.rstrip(".") + ".", dns.rdatatype.TXT)
    try:
        response = dns.query.tcp(query, _resolve_host(server), timeout=timeout, port=port)
    except (dns.exception.DNSException, OSError, EOFError) as error:
        raise DnsError(f"TXT query for {fqdn} at {server}:{port} failed: {error or type(error).__name__}") from error

    rcode = response.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return []
    if rcode != dns.rcode.NOERROR:
        raise DnsError(f"TXT query for {fqdn} at {server}:{port} failed with {dns.rcode.to_text(rcode)}")

    values = []
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.TXT:
            values += [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in rrset]
    return values


def build_publisher(settings: Settings) -> Rfc2136Publisher:
    """Return the publisher the settings describe.

    Both backends speak RFC 2136: "rfc2136" to the provider's DNS server, and
    "builtin" to the built-in server (`tenanttls dns serve`) at ``dns_server``.
    """
    host, port = parse_server(settings.dns_server)
    tsig = TsigKey.from_reference(settings.dns_tsig_key) if settings.dns_tsig_key else None
    if settings.dns_backend == "rfc2136" and tsig is None:
        logger.warning("dns updates are not signed: dns_tsig_key is empty; server=%s", settings.dns_server)
    return Rfc2136Publisher(host, port, settings.provider_zone, tsig)


def parse_server(text: str) -> tuple[str, int]:
    """Split ``host:port`` (or ``[v6]:port``; port 53 when missing) into host and port."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.lstrip(":") or "53"
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, "53"
    try:
        port = int(port_text)
    except ValueError as error:
        raise ConfigurationError(
            f"invalid dns_server {text!r}: the port {port_text!r} is not a number; "
            "write 'host:port', such as '127.0.0.1:5353'"
        ) from error
    if not host:
        raise ConfigurationError(f"invalid dns_server {text!r}: the host is missing; write 'host:port'")
    if not 0 < port < 65536:
        raise ConfigurationError(f"invalid dns_server {text!r}: port {port} is outside 1-65535")
    return host, port


def _txt(value: str) -> dns.rdtypes.ANY.TXT.TXT:
    """Return TXT data for `value`, split into 255-byte strings (RFC 1035 section 3.3.14)."""
    data = value.encode("utf-8")
    strings = [data[i : i + _MAX_TXT_STRING] for i in range(0, len(data), _MAX_TXT_STRING)] or [b""]
    return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings)


def _resolve_host(host: str) -> str:
    """Return `host` as an IP address, resolving a host name once (dnspython sends to addresses only)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0]
    except (socket.gaierror, IndexError) as error:
        raise ConfigurationError(f"cannot resolve DNS server host {host!r}: {error}") from error


def _check_port(port: int) -> int:
    if not 0 < port < 65536:
        raise ConfigurationError(f"invalid DNS server port {port}: use 1-65535")
    return port
