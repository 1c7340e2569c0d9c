"""Shared fixtures. Servers (simulator, DNS, ACME, SMTP, PostgreSQL) start on 127.0.0.1
with ports chosen by the operating system, and stop when their fixture ends."""

pytest_plugins = [
    "tests.fixtures.simulator",
    "tests.fixtures.dns",
    "tests.fixtures.acme",
    "tests.fixtures.smtp",
    "tests.fixtures.store",
    "tests.fixtures.postgres",
]
