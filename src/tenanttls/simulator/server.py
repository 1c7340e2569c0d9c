"""`Simulator`: runs the simulated Microsoft 365 over HTTPS in a background thread.

::

    simulator = Simulator(data_dir, seed=seed_dict, dns_nameserver="127.0.0.1:5353").start()
    simulator.base_url   # https://127.0.0.1:PORT, the authority host, Graph host and Exchange host
    simulator.ca_path    # DATA/tls/ca.pem, the CA clients must trust
    simulator.stop()

Everything lives in the data folder: ``state.sqlite3`` (tenants, settings, mutation log),
``tls/`` (CA and server certificate) and ``keys/`` (token signing key). Starting again on the
same folder resumes where it stopped: a seed given at start adds only tenants that do not
exist yet, and a stored app and stored settings win over the seed's. Other front doors (the SMTP one) plug in with `add_service`: an object with
``start(simulator)`` and ``stop()``, started after the HTTPS listener and stopped before it.
"""

from __future__ import annotations

import errno
import logging
import random
import socket
import threading
import time
from pathlib import Path
from typing import Any, Mapping, Protocol

import uvicorn

from tenanttls.clock import Clock, OffsetClock
from tenanttls.errors import ConfigurationError
from tenanttls.simulator.app import build_app
from tenanttls.simulator.dnslookup import parse_nameserver
from tenanttls.simulator.faults import CallCounter, RequestGuard
from tenanttls.simulator.seed import apply_seed, read_seed
from tenanttls.simulator.services import Services
from tenanttls.simulator.settings import LATEST_CLOCK_TIME
from tenanttls.simulator.state import SimulatorState
from tenanttls.simulator.tls import ensure_tls_files
from tenanttls.simulator.tokens import TokenIssuer

logger = logging.getLogger(__name__)

START_TIMEOUT = 15.0
# Seconds a stop waits for requests in flight before it closes the remaining connections.
STOP_GRACE = 1.0


class SimulatorService(Protocol):
    """A front door started and stopped with the simulator (for example the SMTP front door).

    A service may also have a ``routes`` attribute: Starlette routes (inspection paths under
    ``/_simulator/``) that the HTTPS listener serves ahead of its own.
    """

    def start(self, simulator: "Simulator") -> None: ...

    def stop(self) -> None: ...


class Simulator:
    """The simulated Microsoft 365: identity, Graph domains and the Exchange admin API on one HTTPS port."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        host: str = "127.0.0.1",
        http_port: int = 0,
        smtp_port: int | None = None,
        seed: Mapping[str, Any] | Path | str | None = None,
        dns_nameserver: str | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.http_port = http_port
        self.smtp_port = smtp_port
        self.dns_nameserver = dns_nameserver
        self._seed = seed
        self._given_clock = clock
        self._rng = rng
        self._services: list[SimulatorService] = []
        self._started: list[SimulatorService] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.state: SimulatorState | None = None  # type: ignore[assignment]
        self.clock: Clock | None = clock
        self.ca_path = self.data_dir / "tls" / "ca.pem"

        for option, port in (("--http-port", http_port), ("--smtp-port", smtp_port)):
            if port is not None and not 0 <= port <= 65535:
                raise ConfigurationError(f"invalid {option} {port}: expected a port from 1 to 65535, or 0 for a free one")

        if smtp_port is not None:
            from tenanttls.simulator.smtp import SmtpFrontDoorService

            self.add_service(SmtpFrontDoorService(port=smtp_port))

        if dns_nameserver:
            try:
                parse_nameserver(dns_nameserver)
            except ValueError as error:
                raise ConfigurationError(str(error)) from error

    # --- lifecycle ------------------------------------------------------------------------------------

    def add_service(self, service: SimulatorService) -> None:
        """Register a front door to start after the HTTPS listener; starts it now if the simulator runs."""
        self._services.append(service)
        if self._server is not None:
            self._mount(service)
            service.start(self)
            self._started.append(service)

    def _mount(self, service: SimulatorService) -> None:
        # Ahead of the Microsoft routes, whose "/{tenant}/..." patterns would otherwise match first.
        for route in reversed(list(getattr(service, "routes", ()) or ())):
            self._app.router.routes.insert(0, route)

    def start(self) -> "Simulator":
        """Open the state, create TLS material and keys if needed, apply the seed and listen; return self.

        Returns once the HTTPS listener accepts connections. Raises ConfigurationError when the
        data folder cannot be created, the host and port cannot be bound or the server does not
        come up.
        """
        self._prepare_data_dir()
        tls = ensure_tls_files(self.data_dir / "tls", self.host)
        clock = self._open_state()
        issuer = TokenIssuer(self.data_dir / "keys", clock)
        if self._seed is not None:
            seed = read_seed(Path(self._seed)) if isinstance(self._seed, (str, Path)) else self._seed
            apply_seed(self.state, seed, skip_existing=True)

        services = Services(
            state=self.state,
            issuer=issuer,
            clock=clock,
            guard=RequestGuard(self.state, clock, CallCounter(), self._rng),
            dns_nameserver=self.dns_nameserver,
        )
        self.services = services
        self._listen(services, tls.certificate_path, tls.key_path)

        for service in self._services:
            self._mount(service)
            service.start(self)
            self._started.append(service)
        logger.info("simulator started: base_url=%s ca=%s tenants=%s", self.base_url, self.ca_path, len(self.state.tenant_ids()))
        return self

    def _prepare_data_dir(self) -> None:
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise ConfigurationError(
                f"cannot use {self.data_dir} as the data folder: it is a file; give --data the path of a folder "
                "(it is created if missing)"
            )
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigurationError(
                f"cannot create the data folder {self.data_dir}: {error.strerror}; give --data a folder you can write to"
            ) from error

    def _open_state(self) -> Clock:
        clock = self._given_clock or OffsetClock()
        self.state = SimulatorState(self.data_dir / "state.sqlite3", clock)
        offset = self.state.clock_offset_seconds
        if self._given_clock is None and offset > 0:
            if offset > (LATEST_CLOCK_TIME - clock.now()).total_seconds():
                # Only a data folder written before the clock limit existed can hold such an offset.
                logger.warning(
                    "simulator clock offset dropped: offset_seconds=%s latest=%s reason=beyond the latest supported time",
                    offset, LATEST_CLOCK_TIME.isoformat(),
                )
                self.state.set_clock_offset_seconds(0.0)
            else:
                # Resume the time the simulator had reached, so delays already passed stay passed.
                clock.advance(offset)  # type: ignore[attr-defined]
        self.clock = clock
        return clock

    def _listen(self, services: Services, certificate: Path, key: Path) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # asyncio sets TCP_NODELAY on accepted connections only when the protocol is named.
        # Without it, a response body waits for the client's delayed ACK (about 40 ms per request).
        listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        if self.http_port:
            # Only for a fixed port: with port 0, Linux may hand two SO_REUSEADDR sockets the same port.
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.http_port))
        except socket.gaierror as error:
            listener.close()
            raise ConfigurationError(
                f"invalid --host {self.host}: {error.strerror}; give an IP address of this machine, such as 127.0.0.1"
            ) from error
        except OSError as error:
            listener.close()
            raise ConfigurationError(f"cannot listen on {self.host}:{self.http_port}: {_bind_hint(error)}") from error
        self._socket = listener
        self.http_port = listener.getsockname()[1]

        self._app = build_app(services)
        config = uvicorn.Config(
            self._app,
            ssl_certfile=str(certificate),
            ssl_keyfile=str(key),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [listener]}, name="simulator-https", daemon=True)
        self._thread.start()

        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ConfigurationError(f"the simulator did not start listening on {self.host}:{self.http_port}; see the log")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the front doors and the HTTPS listener, and close the state. Safe to call twice."""
        while self._started:
            service = self._started.pop()
            try:
                service.stop()
            except Exception:
                logger.exception("simulator service failed to stop: service=%r", service)

        if self._server is not None and self._thread is not None:
            self._stop_listener(self._server, self._thread)
        if self._socket is not None:
            self._socket.close()
        if self.state is not None:
            self.state.close()
        if self._server is not None:
            logger.info("simulator stopped: base_url=%s", self.base_url)
        self._server = None
        self._thread = None
        self._socket = None
        self.state = None  # type: ignore[assignment]

    @staticmethod
    def _stop_listener(server: uvicorn.Server, thread: threading.Thread) -> None:
        """Let requests in flight finish (up to STOP_GRACE seconds), then close every connection."""
        server.should_exit = True
        deadline = time.monotonic() + STOP_GRACE
        while thread.is_alive() and server.server_state.tasks and time.monotonic() < deadline:
            time.sleep(0.02)

        # Idle keep-alive connections of clients that were not closed would otherwise hold the
        # shutdown for uvicorn's whole graceful-shutdown timeout.
        server.force_exit = True
        thread.join(timeout=10)

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- addresses -------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``https://HOST:PORT`` of the listener; a wildcard listen address is shown as loopback."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}:{self.http_port}"


def _bind_hint(error: OSError) -> str:
    """Return the reason a bind failed and the option that fixes it."""
    if error.errno == errno.EADDRNOTAVAIL:
        return f"{error.strerror}; the --host address is not one of this machine's, so give one such as 127.0.0.1"
    if error.errno == errno.EACCES:
        return f"{error.strerror}; ports below 1024 need privileges, so choose a higher --http-port or 0 for a free one"
    return f"{error.strerror}; choose another --http-port or 0 for a free one"
