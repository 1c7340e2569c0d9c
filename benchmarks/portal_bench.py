"""Measure the operator's fleet page with 100,000 tenants in the store.

Run from the repository root:

    .venv/bin/python benchmarks/portal_bench.py [--tenants 100000] [--requests 30]

It creates a temporary SQLite store with the real schema and fills it with `--tenants`
tenants in bulk. About 73 % await consent, 15 % are completed and the rest are spread over
the other states. Every tenant past awaiting consent has a unique name. Then it serves
the portal with uvicorn on 127.0.0.1, in a child process, and requests, `--requests` times each, over HTTP
with an operator's session cookie:

1. the first page of the fleet (50 rows);
2. a page deep in the fleet (keyset cursor at the middle);
3. a common state filter (awaiting_consent) and a rare one (needs_attention);
4. searches by domain prefix, by unique-name prefix and by tenant id;
5. short, broad searches that match most of the fleet: ``customer``, ``c``, and ``customer``
   within the common state ``completed``;
6. the same queries through the JSON API.

Each figure is the time from sending the request to reading the whole response, as the
median and the 95th percentile. The server, the client and SQLite share one machine;
print the figures with its description when you record them.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import platform
import random
import socket
import sqlite3
import statistics
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY / "src"))

import httpx  # noqa: E402
import itsdangerous  # noqa: E402
import uvicorn  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from benchdata import add_keep_data_option, data_folder  # noqa: E402
from tenanttls.clock import SystemClock  # noqa: E402
from tenanttls.portal.app import SESSION_COOKIE, create_app  # noqa: E402
from tenanttls.portal.config import PortalConfig  # noqa: E402
from tenanttls.portal.context import PortalContext  # noqa: E402
from tenanttls.portal.oidc import OidcClient, SecretCredential  # noqa: E402
from tenanttls.portal.services import PortalServices  # noqa: E402
from tenanttls.store.db import open_store  # noqa: E402
from tenanttls.store.schema import identities, tenants, upgrades  # noqa: E402

PROVIDER_TENANT = "c0000000-0000-4000-8000-00000000000c"
BATCH = 10_000
# Share of tenants per state, as a fleet looks a few weeks into the upgrade (an estimate).
STATE_WEIGHTS = {
    "awaiting_consent": 73,
    "completed": 15,
    "identity": 1, "domain": 1, "accepted": 1, "backup": 1, "connector": 1, "grace": 2, "switched": 1, "verified": 1,
    "needs_attention": 1, "manual": 1, "rolled_back": 1,
}


def fill_store(url: str, count: int, seed: int) -> list[tuple[str, str, str | None]]:
    """Insert `count` tenants with their upgrade rows; return (tenant id, domain, unique name) of each."""
    store = open_store(url, create=True)
    rng = random.Random(seed)
    states = [state for state, weight in STATE_WEIGHTS.items() for _ in range(weight)]
    now = datetime.now(timezone.utc)
    created = []

    with store.engine.begin() as connection:
        for start in range(0, count, BATCH):
            tenant_rows, upgrade_rows, identity_rows = [], [], []
            for number in range(start, min(start + BATCH, count)):
                tenant_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                domain = f"customer{number:06d}.onmicrosoft.com"
                state = rng.choice(states)
                name = None
                tenant_rows.append({"tenant_id": tenant_id, "initial_domain": domain, "display_name": f"Customer {number}", "created_at": now})
                upgrade_rows.append(
                    {
                        "tenant_id": tenant_id, "state": state, "requested": state != "awaiting_consent", "attempts": 0,
                        "overrides": {}, "api_calls": 0, "state_entered_at": now, "updated_at": now, "version": 0,
                        "next_attempt_at": now + timedelta(minutes=rng.randint(1, 600)) if state == "accepted" else None,
                        "last_error": "Throttled: 429 Too Many Requests" if state == "needs_attention" else None,
                    }
                )
                if state != "awaiting_consent":
                    label = base64.b32encode(rng.randbytes(16)).decode().lower().rstrip("=")[:26]
                    name = f"{label}.crosswaretls.com"
                    identity_rows.append({"label": label, "tenant_id": tenant_id, "name": name, "created_at": now})
                created.append((tenant_id, domain, name))
            connection.execute(insert(tenants), tenant_rows)
            connection.execute(insert(upgrades), upgrade_rows)
            if identity_rows:
                connection.execute(insert(identities), identity_rows)
    store.close()
    return created


def build_portal(url: str, secret: bytes, base_url: str) -> PortalContext:
    """Return a portal context on the filled store; the fleet page needs no Microsoft clients."""
    store = open_store(url)
    clock = SystemClock()
    config = PortalConfig(
        public_url=base_url, login_url="https://127.0.0.1:9", client_id=str(uuid.uuid4()),
        session_secret=secret, provider_tenant_id=PROVIDER_TENANT,
    )
    http = httpx.Client()
    oidc = OidcClient(login_url=config.login_url, client_id=config.client_id, credential=SecretCredential("unused"), http=http, clock=clock)
    context = PortalContext(config=config, services=PortalServices(store, clock), clock=clock, oidc=oidc)
    context.closers += [http.close, store.close]
    return context


def operator_cookie(secret: bytes) -> str:
    """Return a session cookie value for an operator, signed as Starlette's SessionMiddleware signs it."""
    session = {
        "user": {"kind": "operator", "tid": PROVIDER_TENANT, "oid": str(uuid.uuid4()), "upn": "bench@provider.example",
                 "name": "Benchmark", "wids": [], "roles": ["Portal.Operator"], "at": time.time()},
        "csrf": "benchmark",
    }
    data = base64.b64encode(json.dumps(session).encode())
    return itsdangerous.TimestampSigner(secret.decode("latin-1")).sign(data).decode()


def serve(url: str, secret: bytes, connection) -> None:
    """Serve the portal on a free port in this (child) process and send the port through `connection`."""
    sock = socket.socket()
    # Accepted connections inherit TCP_NODELAY; without it, the small writes of a response wait
    # for the client's delayed ACK (about 40 ms per request on Linux) when uvicorn is handed a socket.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    context = build_portal(url, secret, f"http://127.0.0.1:{port}")
    server = uvicorn.Server(uvicorn.Config(create_app(context), log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    connection.send(port)
    thread.join()


def measure(client: httpx.Client, path: str, params: dict[str, str], requests: int, expect: str) -> tuple[float, float]:
    """Return the median and 95th percentile of `requests` timed GETs, in milliseconds."""
    times = []
    for _ in range(requests + 2):
        started = time.perf_counter()
        response = client.get(path, params=params)
        body = response.text
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200 or expect not in body:
            raise SystemExit(f"unexpected response for {path} {params}: {response.status_code} {body[:300]}")
    times = times[2:]  # the first two warm the connection and SQLite's page cache
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100_000, help="Tenants to put in the store (default 100000).")
    parser.add_argument("--requests", type=int, default=30, help="Timed requests per query (default 30).")
    parser.add_argument("--seed", type=int, default=7, help="Random seed of the generated fleet.")
    add_keep_data_option(parser)
    arguments = parser.parse_args()

    with data_folder("tenanttls-portal-bench-", keep=arguments.keep_data) as folder:
        url = f"sqlite:///{folder / 'tenanttls.db'}"
        started = time.perf_counter()
        created = fill_store(url, arguments.tenants, arguments.seed)
        print(f"store: {arguments.tenants} tenants inserted in {time.perf_counter() - started:.1f} s")

        # The portal runs in its own process, as `tenanttls portal` does, so that the client's
        # work does not compete with it for the interpreter lock.
        secret = os.urandom(32).hex().encode()
        parent_end, child_end = multiprocessing.Pipe()
        child = multiprocessing.get_context("fork").Process(target=serve, args=(url, secret, child_end), daemon=True)
        child.start()
        if not parent_end.poll(30):
            raise SystemExit("the portal did not start within 30 s")
        base_url = f"http://127.0.0.1:{parent_end.recv()}"
        middle = sorted(domain for _, domain, _ in created)[len(created) // 2]
        named = next(name for _, _, name in created if name)
        some_id = created[len(created) // 3][0]

        queries = [
            ("first page", {}, "Fleet"),
            ("page in the middle (cursor)", {"after": middle}, "Next page"),
            ("state awaiting_consent (common)", {"state": "awaiting_consent"}, "Next page"),
            ("state needs_attention (rare)", {"state": "needs_attention"}, "Throttled"),
            ("search domain prefix", {"q": "customer0999"}, "customer099900"),
            ("search unique-name prefix", {"q": named[:10]}, named),
            ("search tenant id", {"q": some_id}, some_id),
            ("search 'customer' (broad)", {"q": "customer"}, "More than 1,000 tenants match"),
            ("search 'c' (broad)", {"q": "c"}, "More than 1,000 tenants match"),
            ("state completed, search 'customer'", {"state": "completed", "q": "customer"}, "More than 1,000 tenants match"),
        ]
        print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")
        print(f"{'query':36} {'page median':>12} {'page p95':>10} {'API median':>11} {'API p95':>9}")
        with httpx.Client(base_url=base_url, cookies={SESSION_COOKIE: operator_cookie(secret)}, timeout=30) as client:
            for label, params, expect in queries:
                page = measure(client, "/operator", params, arguments.requests, expect)
                api = measure(client, "/api/operator/tenants", params, arguments.requests, '"tenants"')
                print(f"{label:36} {page[0]:9.1f} ms {page[1]:7.1f} ms {api[0]:8.1f} ms {api[1]:6.1f} ms")

        child.terminate()
        child.join(10)


if __name__ == "__main__":
    main()
