"""A small real HTTP server on 127.0.0.1 that returns scripted replies, over HTTPS or plain HTTP.

The client tests use it for responses the simulator does not produce on purpose
(HTML error pages, truncated JSON, a `nextLink` to another host) and for exact
control over retries. It records every request and the peak number in flight.
The Exchange and Graph clients accept only https base URLs, so their tests serve
HTTPS with a CA made by the simulator's TLS helper. The transport tests use plain HTTP.
"""

from __future__ import annotations

import json
import ssl
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from tenanttls.simulator.tls import ensure_tls_files


@dataclass
class Reply:
    """One scripted reply; `delay` seconds pass before it is sent."""

    status: int = 200
    body: Any = None  # dict/list: sent as JSON; str/bytes: sent as is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    close: bool = False  # close the connection without sending a response


@dataclass
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that rejects the certificate ends the handshake on purpose in some tests.
        if not isinstance(sys.exc_info()[1], ssl.SSLError):
            super().handle_error(request, client_address)


class ScriptedServer:
    """Serve `Reply` objects from `replies` in order, then `default`; or call `handler` for each request.

    With `tls_dir`, the server speaks HTTPS with a certificate for 127.0.0.1 whose CA is
    `ca_path`; without it, plain HTTP.
    """

    def __init__(self, tls_dir: Path | None = None) -> None:
        self.replies: list[Reply] = []
        self.default = Reply(200, {"value": []})
        self.handler: Callable[[Recorded], Reply] | None = None
        self.requests: list[Recorded] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self.ca_path: Path | None = None
        if tls_dir is not None:
            files = ensure_tls_files(tls_dir, "127.0.0.1")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(files.certificate_path, files.key_path)
            # The handshake runs in the request's thread, on its first read, so a client that
            # stalls in the handshake does not block the accept loop.
            self._server.socket = context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
            self.ca_path = files.ca_path
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        scheme = "http" if self.ca_path is None else "https"
        return f"{scheme}://{host}:{port}"

    def start(self) -> "ScriptedServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _next_reply(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            if self.handler is None and self.replies:
                return self.replies.pop(0)
        return self.handler(recorded) if self.handler else self.default

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Without TCP_NODELAY the body, written after the headers, waits for the client's
            # delayed ACK: about 40 ms per response on Linux.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                recorded = Recorded(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
                with server._lock:
                    server.in_flight += 1
                    server.peak_in_flight = max(server.peak_in_flight, server.in_flight)
                try:
                    reply = server._next_reply(recorded)
                    if reply.delay and server._stopping.wait(reply.delay):
                        return
                    if reply.close:
                        self.close_connection = True
                        return
                    self._send(reply)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _send(self, reply: Reply) -> None:
                if isinstance(reply.body, (dict, list)):
                    payload = json.dumps(reply.body).encode()
                    content_type = "application/json; charset=utf-8"
                elif isinstance(reply.body, str):
                    payload = reply.body.encode()
                    content_type = "text/html; charset=utf-8"
                else:
                    payload = reply.body or b""
                    content_type = "application/octet-stream"
                self.send_response(reply.status)
                headers = {"Content-Type": content_type, **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_DELETE = do_PATCH = _serve

        return Handler


class StaticTokens:
    """A token source that replaces Microsoft Entra ID in tests and returns numbered tokens."""

    def __init__(self) -> None:
        self.issued = 0
        self.invalidated: list[tuple[str, str]] = []

    def get_token(self, tenant: str, scope: str) -> str:
        self.issued += 1
        return f"token-{self.issued}"

    def invalidate(self, tenant: str, scope: str) -> None:
        self.invalidated.append((tenant, scope))
