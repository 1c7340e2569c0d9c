"""Measure the Microsoft clients against the simulator: requests per second and client overhead per call.

Run from the repository root:

    .venv/bin/python benchmarks/clients_bench.py [--tenants 10] [--calls 300] [--threads 8]

It starts the simulator on 127.0.0.1 (HTTPS, its own CA) in a temporary folder with
`--tenants` consenting tenants, each with the legacy inbound connector, then measures:

1. sequential calls of ``ExchangeClient.get_inbound_connectors`` and
   ``GraphDomainsClient.get_domain`` next to the same HTTP request sent with a bare
   ``httpx.Client`` (same token, headers and body). Client overhead per call is the
   difference of the mean times: input checks, the transport's limits, logging, JSON
   parsing and building the typed records. Because the wall times include the server's
   and the network's variation, the CPU time of the calling thread (`time.thread_time`)
   is compared too. A third figure is the client's wall time minus the network time
   httpx reports (`Transport.stats().network_seconds`);
2. requests per second with `--threads` threads spread over the tenants, with the
   client-side limits set far above the load;
3. the same load under the default `TransportPolicy`, whose global token bucket
   (20 requests per second, burst 20) caps the rate.

Tokens are fetched before the timing starts. The simulator, the clients and the threads
share one Python process (one GIL), so the figures are lower bounds for the clients.
The figures depend on the machine; print them with its description when you record them.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import ssl
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import httpx

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from benchdata import add_keep_data_option, data_folder  # noqa: E402
from tenanttls.exchange.client import ANCHOR_MAILBOX, EXCHANGE_SCOPE, ExchangeClient  # noqa: E402
from tenanttls.graph.client import GRAPH_SCOPE, GraphDomainsClient  # noqa: E402
from tenanttls.identity.tokens import TokenProvider  # noqa: E402
from tenanttls.simulator import Simulator  # noqa: E402
from tenanttls.transport import Transport, TransportPolicy  # noqa: E402
from tests.fixtures.simulator import make_app_credentials, make_seed, make_tenant  # noqa: E402

UNLIMITED = {"requests_per_second": 1_000_000.0, "burst": 1_000_000, "tenant_concurrency": 1_000}


def timed(call: Callable[[], object], count: int) -> tuple[list[float], float]:
    """Run `call` `count` times; return each run's wall seconds and the mean CPU seconds of this thread."""
    durations = []
    cpu_started = time.thread_time()
    for _ in range(count):
        started = time.perf_counter()
        call()
        durations.append(time.perf_counter() - started)
    return durations, (time.thread_time() - cpu_started) / count


def run_threads(threads: int, calls: int, call: Callable[[int], object]) -> float:
    """Make `calls` calls of `call(index)` from `threads` threads; return the seconds taken."""
    next_index = iter(range(calls))
    lock = threading.Lock()
    failures: list[BaseException] = []

    def worker() -> None:
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                return
            try:
                call(index)
            except Exception as error:  # reported after the run
                failures.append(error)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    started = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        print(f"  {len(failures)} calls failed, first: {failures[0]}")
    return elapsed


def report(label: str, client: tuple[list[float], float], bare: tuple[list[float], float]) -> None:
    client_ms = statistics.mean(client[0]) * 1000
    bare_ms = statistics.mean(bare[0]) * 1000
    print(f"  {label}: client {client_ms:.2f} ms/call ({1000 / client_ms:.0f}/s), bare httpx {bare_ms:.2f} ms/call, "
          f"wall overhead {client_ms - bare_ms:.2f} ms/call")
    print(f"    CPU of the calling thread: client {client[1] * 1000:.3f} ms/call, bare httpx {bare[1] * 1000:.3f} ms/call, "
          f"overhead {(client[1] - bare[1]) * 1000:.3f} ms/call")


def sequential(simulator: Simulator, tokens: TokenProvider, tenant_ids: list[str], calls: int) -> None:
    """Section 1: one client call at a time, next to the same request sent with bare httpx."""
    context = ssl.create_default_context(cafile=str(simulator.ca_path))
    tenant = tenant_ids[0]
    initial_domain = f"t{tenant.replace('-', '')[:12]}.onmicrosoft.com"

    with Transport(TransportPolicy(**UNLIMITED), verify=simulator.ca_path) as transport, httpx.Client(verify=context) as bare:
        exchange = ExchangeClient(tokens, base_url=simulator.base_url, transport=transport)
        graph = GraphDomainsClient(tokens, base_url=simulator.base_url, transport=transport)
        exchange_headers = {
            "Authorization": f"Bearer {tokens.get_token(tenant, EXCHANGE_SCOPE)}",
            "Prefer": "odata.maxpagesize=1000",
            "X-AnchorMailbox": ANCHOR_MAILBOX + tenant,
            "X-CmdletName": "Get-InboundConnector",
            "X-ResponseFormat": "json",
        }
        body = {"CmdletInput": {"CmdletName": "Get-InboundConnector", "Parameters": {}}}
        graph_headers = {"Authorization": f"Bearer {tokens.get_token(tenant, GRAPH_SCOPE)}"}
        exchange_url = f"{simulator.base_url}/adminapi/beta/{tenant}/InvokeCommand"
        graph_url = f"{simulator.base_url}/v1.0/domains/{initial_domain}"

        for _ in range(20):  # warm connections and code paths
            exchange.get_inbound_connectors(tenant)
            bare.post(exchange_url, headers=exchange_headers, json=body)

        network_before = transport.stats().network_seconds
        client_exchange = timed(lambda: exchange.get_inbound_connectors(tenant), calls)
        network = transport.stats().network_seconds - network_before
        bare_exchange = timed(lambda: bare.post(exchange_url, headers=exchange_headers, json=body).json(), calls)
        client_graph = timed(lambda: graph.get_domain(tenant, initial_domain), calls)
        bare_graph = timed(lambda: bare.get(graph_url, headers=graph_headers).json(), calls)

    print(f"1. sequential, {calls} calls each")
    report("Exchange Get-InboundConnector", client_exchange, bare_exchange)
    report("Graph GET /domains/{id}", client_graph, bare_graph)
    outside = (sum(client_exchange[0]) - network) / calls * 1000
    print(f"  Exchange client time outside the network (wall - httpx elapsed): {outside:.2f} ms/call")


def concurrent(simulator: Simulator, tokens: TokenProvider, tenant_ids: list[str], calls: int, threads: int, policy: TransportPolicy, label: str) -> None:
    """Sections 2 and 3: calls from several threads over all tenants under `policy`."""
    with Transport(policy, verify=simulator.ca_path) as transport:
        exchange = ExchangeClient(tokens, base_url=simulator.base_url, transport=transport)
        elapsed = run_threads(threads, calls, lambda index: exchange.get_accepted_domains(tenant_ids[index % len(tenant_ids)]))
        stats = transport.stats()
    print(f"{label}: {calls} calls, {threads} threads, {len(tenant_ids)} tenants: {calls / elapsed:.0f} requests/s "
          f"({elapsed:.2f} s, {stats.retries} retries, {stats.failures} failures)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10, help="number of simulated tenants (default 10)")
    parser.add_argument("--calls", type=int, default=300, help="calls per measurement (default 300)")
    parser.add_argument("--threads", type=int, default=8, help="threads for the concurrent runs (default 8)")
    add_keep_data_option(parser)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    credentials = make_app_credentials()
    tenants = [make_tenant() for _ in range(arguments.tenants)]
    tenant_ids = [tenant["tenant_id"] for tenant in tenants]

    with data_folder("tenanttls-clients-bench-", keep=arguments.keep_data) as folder:
        simulator = Simulator(folder, seed=make_seed(credentials, tenants)).start()
        try:
            tokens = TokenProvider(
                credentials.client_id,
                credentials.private_key_pem,
                credentials.certificate_pem,
                login_url=simulator.base_url,
                verify=simulator.ca_path,
            )
            for tenant_id in tenant_ids:
                tokens.get_token(tenant_id, EXCHANGE_SCOPE)
                tokens.get_token(tenant_id, GRAPH_SCOPE)

            sequential(simulator, tokens, tenant_ids, arguments.calls)
            concurrent(simulator, tokens, tenant_ids, arguments.calls, arguments.threads, TransportPolicy(**UNLIMITED), "2. concurrent, limits far above the load")
            concurrent(simulator, tokens, tenant_ids, arguments.calls, arguments.threads, TransportPolicy(), "3. concurrent, default policy")
            tokens.close()
        finally:
            simulator.stop()


if __name__ == "__main__":
    main()
