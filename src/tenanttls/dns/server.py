"""`BuiltinDnsServer`: a minimal authoritative DNS server for the embedded default.

It serves one zone from the store over UDP and TCP on the same port and accepts
RFC 2136 updates of TXT records, so the demo runs the same `Rfc2136Publisher` code
as production does against Knot, BIND or PowerDNS. The simulator's domain
verification queries it like any authoritative server.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import socketserver
import struct
import threading

import dns.rcode
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from tenanttls.clock import Clock, SystemClock
from tenanttls.dns.responder import Responder, reply_error
from tenanttls.dns.tsig import TsigKey
from tenanttls.dns.zone import ZoneRecords
from tenanttls.errors import DnsError, InvalidInput
from tenanttls.store.db import driver_message

logger = logging.getLogger(__name__)

_TCP_IDLE_TIMEOUT = 10.0
_BIND_ATTEMPTS = 20


class BuiltinDnsServer:
    """Authoritative server for `zone`: SOA and NS at the apex, TXT records from the store.

    Updates must be signed with `tsig` when it is given. Port 0 lets the operating
    system choose a free port. Use as a context manager, or call `start` and `stop`.
    """

    def __init__(
        self,
        engine: Engine,
        zone: str,
        host: str = "127.0.0.1",
        port: int = 0,
        tsig: TsigKey | None = None,
        clock: Clock | None = None,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise InvalidInput(
                f"invalid DNS server port {port!r}: use 1-65535, or 0 to let the system choose a free port"
            )
        self.records = ZoneRecords(engine, zone, clock or SystemClock())
        self.host = host
        self.tsig = tsig
        self._requested_port = port
        self._responder = Responder(self.records, tsig)
        self._udp: socketserver.ThreadingUDPServer | None = None
        self._tcp: socketserver.ThreadingTCPServer | None = None
        self._threads: list[threading.Thread] = []

    @property
    def zone(self) -> str:
        """The zone this server is authoritative for."""
        return self.records.zone

    @property
    def port(self) -> int:
        """The UDP and TCP port in use; only known after `start`."""
        if self._udp is None:
            raise DnsError("the built-in DNS server is not started; call start() first")
        return self._udp.server_address[1]

    @property
    def address(self) -> str:
        """``host:port`` (``[host]:port`` for IPv6), the form the simulator and `dns_server` settings take."""
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"

    def start(self) -> BuiltinDnsServer:
        """Create the zone's apex records if missing, bind UDP and TCP, and serve in threads."""
        self.records.ensure_apex(f"ns.{self.zone}", _glue_address(self.host))
        self._udp, self._tcp = self._bind()

        for server in (self._udp, self._tcp):
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"dns-{self.zone}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        logger.info("dns server started: zone=%s address=%s", self.zone, self.address)
        return self

    def stop(self) -> None:
        """Stop serving and close both sockets."""
        servers = [server for server in (self._udp, self._tcp) if server is not None]
        # shutdown() waits up to one poll interval, so both servers are shut down at once.
        stoppers = [threading.Thread(target=server.shutdown) for server in servers]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join(timeout=5)
        for server in servers:
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._udp is not None:
            logger.info("dns server stopped: zone=%s address=%s", self.zone, self.address)
        self._threads.clear()
        self._udp = self._tcp = None

    def __enter__(self) -> BuiltinDnsServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _bind(self) -> tuple[socketserver.ThreadingUDPServer, socketserver.ThreadingTCPServer]:
        """Bind UDP, then TCP on the same port; with port 0, retry when TCP's port is taken."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        udp_class = type("_Udp", (_UdpServer,), {"address_family": family})
        tcp_class = type("_Tcp", (_TcpServer,), {"address_family": family})

        for _ in range(_BIND_ATTEMPTS if self._requested_port == 0 else 1):
            udp = udp_class((self.host, self._requested_port), _UdpHandler, responder=self._responder)
            try:
                tcp = tcp_class((self.host, udp.server_address[1]), _TcpHandler, responder=self._responder)
            except OSError as error:
                udp.server_close()
                last_error = error
                continue
            return udp, tcp
        raise DnsError(
            f"cannot bind the built-in DNS server to {self.host}:{self._requested_port}/tcp: "
            f"{last_error.strerror or last_error}; choose another port (--port or dns_server)"
        )


class _UdpServer(socketserver.ThreadingUDPServer):
    daemon_threads = True
    # SO_REUSEADDR on UDP would let two servers share one port without an error.
    allow_reuse_address = False

    def __init__(self, address, handler, *, responder: Responder) -> None:
        self.responder = responder
        try:
            super().__init__(address, handler)
        except OSError as error:
            raise DnsError(
                f"cannot bind the built-in DNS server to {address[0]}:{address[1]}/udp: {error.strerror or error}; "
                "check the address (--host or dns_server) and that no other server uses the port"
            ) from error


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, *, responder: Responder) -> None:
        self.responder = responder
        super().__init__(address, handler)


class _UdpHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        wire, sock = self.request
        peer = f"{self.client_address[0]}:{self.client_address[1]}"
        reply = _respond(self.server.responder, wire, peer, tcp=False)
        if reply is not None:
            sock.sendto(reply, self.client_address)


class _TcpHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(_TCP_IDLE_TIMEOUT)
        peer = f"{self.client_address[0]}:{self.client_address[1]}"
        try:
            while True:
                header = _read_exactly(self.request, 2)
                if header is None:
                    return
                wire = _read_exactly(self.request, struct.unpack("!H", header)[0])
                if wire is None:
                    return
                reply = _respond(self.server.responder, wire, peer, tcp=True)
                if reply is None:
                    return
                self.request.sendall(struct.pack("!H", len(reply)) + reply)
        except (TimeoutError, ConnectionError):
            return


def _respond(responder: Responder, wire: bytes, peer: str, *, tcp: bool) -> bytes | None:
    """Return the responder's reply, or SERVFAIL after logging an unexpected error (a database failure)."""
    try:
        return responder.respond(wire, peer, tcp=tcp)
    except DBAPIError as error:
        # An outage fails every query alike; one line each keeps the log readable.
        logger.warning("dns request failed, store unreachable: peer=%s error=%s", peer, driver_message(error))
        return reply_error(wire, dns.rcode.SERVFAIL)
    except Exception:
        logger.exception("dns request failed: peer=%s", peer)
        return reply_error(wire, dns.rcode.SERVFAIL)


def _read_exactly(sock: socket.socket, length: int) -> bytes | None:
    data = b""
    while len(data) < length:
        chunk = sock.recv(length - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _glue_address(host: str) -> str:
    """Return the IPv4 address published for ``ns.<zone>``: `host` itself, or loopback for a name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "127.0.0.1"
    if address.version != 4 or address.is_unspecified:
        return "127.0.0.1"
    return str(address)
