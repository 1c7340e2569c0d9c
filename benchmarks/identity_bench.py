"""Measure DNS updates per second and certificate issuance time per identity.

Run from the repository root:

    .venv/bin/python benchmarks/identity_bench.py [--updates 200] [--identities 10]

It starts Knot and Pebble on 127.0.0.1 as the test fixtures do (both must be
installed: Debian packages knot and pebble), then measures:

1. RFC 2136 updates per second to Knot and to the built-in server: sequential
   TSIG-signed TXT additions, then removals, one TCP connection each;
2. issuance time per identity with ACME (Pebble, DNS-01 through Knot): allocate the
   label, order, publish, wait for the record, validate, finalize, download, remove
   the record, check and store the chain;
3. the same with the local CA, for comparison.

The figures depend on the machine; print them with its description when you record them.
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

from sqlalchemy import create_engine

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from benchdata import add_keep_data_option, data_folder  # noqa: E402
from tenanttls.certificates.acme_issuer import AcmeAccounts, AcmeIssuer  # noqa: E402
from tenanttls.certificates.identities import IdentityService  # noqa: E402
from tenanttls.certificates.keystore import KeyStore  # noqa: E402
from tenanttls.certificates.local_ca import LocalCaIssuer  # noqa: E402
from tenanttls.certificates.names import new_label  # noqa: E402
from tenanttls.certificates.service import CertificateService  # noqa: E402
from tenanttls.clock import SystemClock  # noqa: E402
from tenanttls.dns.server import BuiltinDnsServer  # noqa: E402
from tenanttls.dns.tsig import TsigKey  # noqa: E402
from tenanttls.store import schema  # noqa: E402
from tests.fixtures.acme import PebbleServer  # noqa: E402
from tests.fixtures.dns import KnotServer, publisher_for  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=200, help="TXT records to add and then remove (default 200)")
    parser.add_argument("--identities", type=int, default=10, help="identities to issue per issuer (default 10)")
    add_keep_data_option(parser)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    print(f"machine: {platform.machine()}, {platform.system()} {platform.release()}, Python {platform.python_version()}")
    with data_folder("tenanttls-identity-bench-", keep=arguments.keep_data) as workspace:
        engine = create_engine(f"sqlite:///{workspace / 'bench.db'}")
        schema.metadata.create_all(engine)

        knot = KnotServer().start()
        pebble = PebbleServer(knot.address).start()
        builtin = BuiltinDnsServer(engine, "builtin.test", tsig=TsigKey.generate("bench-update")).start()
        try:
            measure_updates("Knot", knot, arguments.updates)
            measure_updates("built-in server", builtin, arguments.updates)

            accounts = AcmeAccounts(engine, KeyStore(bytes(32)))
            acme = AcmeIssuer(pebble.directory_url, publisher_for(knot), accounts, pebble.tls_ca_path, roots=pebble.roots())
            measure_issuance("ACME (Pebble, DNS-01 via Knot)", engine, acme, knot.zone, arguments.identities)
            local = LocalCaIssuer(workspace / "ca")
            measure_issuance("local CA", engine, local, knot.zone, arguments.identities)
        finally:
            builtin.stop()
            pebble.stop()
            knot.stop()
            engine.dispose()


def measure_updates(label: str, server, count: int) -> None:
    """Print how many sequential TXT additions and removals per second `server` applies."""
    publisher = publisher_for(server)
    names = [f"_acme-challenge.{new_label()}.{server.zone}" for _ in range(count)]

    added = _rate(lambda: [publisher.add_txt(name, "benchmark-value") for name in names], count)
    removed = _rate(lambda: [publisher.remove_txt(name, "benchmark-value") for name in names], count)
    print(f"{label}: {count} RFC 2136 updates each: add {added:.0f}/s, remove {removed:.0f}/s")


def measure_issuance(label: str, engine, issuer, zone: str, count: int) -> None:
    """Print the time per identity: allocate, issue, check and store `count` certificates."""
    clock = SystemClock()
    identities = IdentityService(engine, zone, clock)
    service = CertificateService(engine, issuer, KeyStore(bytes(32)), clock, orders_per_hour=1_000_000)

    seconds = []
    for _ in range(count):
        tenant_id = str(uuid.uuid4())
        started = time.perf_counter()
        service.ensure_certificate(tenant_id, identities.allocate(tenant_id).name)
        seconds.append(time.perf_counter() - started)

    print(
        f"{label}: {count} identities: mean {statistics.mean(seconds):.2f} s, "
        f"median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s per identity"
    )


def _rate(action: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    action()
    return count / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
