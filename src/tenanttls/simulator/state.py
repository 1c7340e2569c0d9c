"""The simulator's persistent, thread-safe state: tenants, the provider app, settings, the mutation log.

State lives in ``DATA/state.sqlite3`` (one JSON document per tenant, see `tenants`) and in
memory. Every change goes through `SimulatorState.edit`, which hands out a copy of the
tenant's document and stores it only when the block finishes without an exception, so a
rejected request never changes state. Each stored change is also written to the mutation
log with the tenant id.
"""

from __future__ import annotations

import copy
import json
import logging
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Mapping

from tenanttls.clock import Clock
from tenanttls.domain.names import is_guid
from tenanttls.errors import InvalidInput, NotFoundError
from tenanttls.simulator import tenants
from tenanttls.simulator.display import quoted
from tenanttls.simulator.settings import (
    DEFAULT_DELAYS,
    apply_overrides,
    apply_settings,
    default_settings,
    validate_delays,
    validate_faults,
    validate_settings,
)
from tenanttls.simulator.tenants import Document, iso

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tenants (tenant_id TEXT PRIMARY KEY, document TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mutations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    tenant_id TEXT,
    operation TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS mutations_tenant ON mutations (tenant_id, id);
"""


@dataclass(frozen=True)
class TenantMailView:
    """One tenant's mail configuration in effect at a moment.

    `accepted_domains` are the lower-case domain names Get-AcceptedDomain lists at that
    moment; `inbound_connectors` are Get-InboundConnector field dicts in the version that
    is in effect for mail then (a change younger than the connector delay is not yet seen).
    """

    tenant_id: str
    initial_domain: str
    accepted_domains: tuple[str, ...]
    inbound_connectors: tuple[dict[str, Any], ...]


class SimulatorState:
    """Thread-safe access to the simulated tenants, backed by a SQLite file."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        self._lock = threading.RLock()
        self._connection = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.executescript(SCHEMA)

        self._tenants: dict[str, Document] = {}
        self._names: dict[str, str] = {}
        self._load()

    # --- lifecycle -------------------------------------------------------------------------------

    def _load(self) -> None:
        for tenant_id, text in self._connection.execute("SELECT tenant_id, document FROM tenants"):
            self._tenants[tenant_id] = json.loads(text)
        self._reindex()

        stored = self._meta("settings")
        self._settings_stored = stored is not None
        self._settings = apply_settings(default_settings(), stored) if stored else default_settings()
        self._app: Document | None = self._meta("app")

    def close(self) -> None:
        """Close the database file; the object must not be used afterwards."""
        with self._lock:
            self._connection.close()

    def _meta(self, key: str) -> Any:
        row = self._connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def _set_meta(self, key: str, value: Any) -> None:
        self._connection.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def _reindex(self) -> None:
        """Rebuild the maps from every verified domain (initial domains included) and every ``MS=`` proof value to its tenant."""
        self._names = {}
        self._names_by_tenant: dict[str, set[str]] = {}
        self._codes: dict[str, tuple[str, str]] = {}
        self._codes_by_tenant: dict[str, set[str]] = {}
        for tenant_id, document in self._tenants.items():
            self._index_tenant(tenant_id, document)

    def _index_tenant(self, tenant_id: str, document: Document | None) -> None:
        """Replace the index entries of one tenant, so a write costs time in its own domains only."""
        for name in self._names_by_tenant.pop(tenant_id, set()):
            if self._names.get(name) == tenant_id:
                del self._names[name]
        for code in self._codes_by_tenant.pop(tenant_id, set()):
            if self._codes.get(code, ("",))[0] == tenant_id:
                del self._codes[code]
        if document is None:
            return

        verified = {name for name, entry in document["domains"].items() if entry["isVerified"]}
        for name in verified:
            self._names[name] = tenant_id
        self._names_by_tenant[tenant_id] = verified

        for name, entry in document["domains"].items():
            self._codes[entry["verificationCode"]] = (tenant_id, name)
        self._codes_by_tenant[tenant_id] = {entry["verificationCode"] for entry in document["domains"].values()}

    # --- the provider app ---------------------------------------------------------------------------

    @property
    def app(self) -> Document | None:
        """The provider app's registration (client id, certificates, redirect URIs, permissions), or None."""
        with self._lock:
            return copy.deepcopy(self._app)

    def set_app(self, app: Mapping[str, Any]) -> None:
        """Store the provider app's registration, replacing any earlier one."""
        with self._lock, self._transaction():
            self._app = copy.deepcopy(dict(app))
            self._set_meta("app", self._app)
            self._log(None, "set-app", {"client_id": app.get("client_id")})

    # --- settings -----------------------------------------------------------------------------------

    @property
    def settings(self) -> dict[str, Any]:
        """The global settings: delays, faults, page_size, token_lifetime_seconds."""
        with self._lock:
            return copy.deepcopy(self._settings)

    @property
    def settings_stored(self) -> bool:
        """Whether the data folder has stored settings, written by a seed or a settings update."""
        with self._lock:
            return self._settings_stored

    def update_settings(self, update: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a partial update of the global settings (validated here) and return the result."""
        checked = validate_settings(update)
        with self._lock, self._transaction():
            self._settings = apply_settings(self._settings, checked)
            self._set_meta("settings", self._settings)
            self._settings_stored = True
            self._log(None, "update-settings", checked)
            return copy.deepcopy(self._settings)

    def delays(self, tenant_id: str | None) -> dict[str, float]:
        """Return the delays in force for `tenant_id`: the tenant's overrides on top of the global ones."""
        with self._lock:
            delays = dict(self._settings["delays"])
            if tenant_id in self._tenants:
                delays.update(self._tenants[tenant_id].get("delays", {}))
            return delays

    def faults(self, tenant_id: str | None) -> tuple[dict[str, Any], set[str]]:
        """Return the fault settings in force for `tenant_id` and the keys the tenant overrides."""
        with self._lock:
            faults = copy.deepcopy(self._settings["faults"])
            overridden: set[str] = set()
            if tenant_id in self._tenants:
                own = self._tenants[tenant_id].get("faults", {})
                faults.update(copy.deepcopy(own))
                overridden = set(own)
            return faults, overridden

    @property
    def clock_offset_seconds(self) -> float:
        """Seconds the server clock was moved ahead of wall time, kept across restarts."""
        with self._lock:
            return float(self._meta("clock_offset_seconds") or 0.0)

    def set_clock_offset_seconds(self, seconds: float) -> None:
        """Store how far the server clock is ahead of wall time."""
        with self._lock, self._transaction():
            self._set_meta("clock_offset_seconds", seconds)
            self._log(None, "advance-clock", {"offset_seconds": seconds})

    # --- tenants ------------------------------------------------------------------------------------

    def tenant_ids(self) -> list[str]:
        """Return the ids of all tenants, in insertion order."""
        with self._lock:
            return list(self._tenants)

    def has_tenant(self, tenant_id: str) -> bool:
        """Return True when a tenant with this id exists."""
        with self._lock:
            return tenant_id in self._tenants

    def resolve(self, reference: str) -> str | None:
        """Return the tenant id that `reference` (a GUID or a verified domain name, any case) names."""
        text = (reference or "").strip().lower()
        with self._lock:
            if is_guid(text) and text in self._tenants:
                return text
            return self._names.get(text.rstrip("."))

    def tenant(self, tenant_id: str) -> Document:
        """Return a copy of the tenant's document; raise NotFoundError if it does not exist."""
        with self._lock:
            document = self._tenants.get(tenant_id)
            if document is None:
                raise NotFoundError(f"tenant {quoted(tenant_id)} not found in the simulator; seed it first")
            return copy.deepcopy(document)

    def domain_owner(self, name: str) -> str | None:
        """Return the id of the tenant where `name` is a verified domain, or None."""
        with self._lock:
            return self._names.get(name.lower())

    def verification_codes(self) -> dict[str, tuple[str, str]]:
        """Return every stored ``MS=`` proof value with its tenant id and domain name."""
        with self._lock:
            return dict(self._codes)

    def verification_code_owner(self, code: str) -> tuple[str, str] | None:
        """Return the tenant id and domain name that use the ``MS=`` proof value `code`, or None."""
        with self._lock:
            return self._codes.get(code)

    def add_tenant(self, document: Document, *, replace: bool = False) -> None:
        """Store a new tenant document; with `replace`, an existing tenant of that id is overwritten.

        Raises InvalidInput when the tenant exists (without `replace`), or when one of its
        verified domains is verified in another tenant.
        """
        tenant_id = document["tenant_id"]
        with self._lock:
            if tenant_id in self._tenants and not replace:
                raise InvalidInput(f"tenant {tenant_id} already exists in the simulator; delete it or seed with replace")

            for name, entry in document["domains"].items():
                owner = self._names.get(name)
                if entry["isVerified"] and owner is not None and owner != tenant_id:
                    raise InvalidInput(
                        f"domain {quoted(name)} of tenant {tenant_id} is already verified in tenant {owner}; "
                        "use another domain name"
                    )

            with self._transaction():
                self._write_tenant(document)
                self._log(tenant_id, "seed-tenant", {"initial_domain": document["initial_domain"], "replace": replace})

    def delete_tenant(self, tenant_id: str) -> None:
        """Remove a tenant and all its objects; raise NotFoundError if it does not exist."""
        with self._lock:
            if tenant_id not in self._tenants:
                raise NotFoundError(f"tenant {quoted(tenant_id)} not found in the simulator")
            with self._transaction():
                self._connection.execute("DELETE FROM tenants WHERE tenant_id = ?", (tenant_id,))
                del self._tenants[tenant_id]
                self._index_tenant(tenant_id, None)
                self._log(tenant_id, "delete-tenant", {})

    @contextmanager
    def edit(self, tenant_id: str, operation: str, detail: Mapping[str, Any] | None = None) -> Iterator[Document]:
        """Yield a copy of the tenant's document to change; store it and log `operation` when the block succeeds.

        An exception in the block leaves the stored tenant unchanged, and so does a block
        that changes nothing (nothing is logged then). `detail` goes to the mutation log;
        it must not contain secrets.
        """
        with self._lock:
            draft = self.tenant(tenant_id)
            yield draft

            tenants.prune_connector_versions(draft, self.clock.now())
            if draft == self._tenants[tenant_id]:
                return

            self._check_domain_conflicts(draft)
            with self._transaction():
                self._write_tenant(draft)
                self._log(tenant_id, operation, dict(detail or {}))

    def _check_domain_conflicts(self, document: Document) -> None:
        for name, entry in document["domains"].items():
            owner = self._names.get(name)
            if entry["isVerified"] and owner is not None and owner != document["tenant_id"]:
                raise InvalidInput(f"domain {quoted(name)} is already verified in tenant {owner}")

    def _write_tenant(self, document: Document) -> None:
        self._connection.execute(
            "INSERT INTO tenants (tenant_id, document) VALUES (?, ?) "
            "ON CONFLICT(tenant_id) DO UPDATE SET document = excluded.document",
            (document["tenant_id"], json.dumps(document)),
        )
        self._tenants[document["tenant_id"]] = document
        self._index_tenant(document["tenant_id"], document)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._connection.execute("ROLLBACK")
            self._tenants = {tenant_id: json.loads(text) for tenant_id, text in self._connection.execute(
                "SELECT tenant_id, document FROM tenants"
            )}
            self._reindex()
            raise
        self._connection.execute("COMMIT")

    # --- tenant settings ------------------------------------------------------------------------------

    def update_tenant(self, tenant_id: str, update: Mapping[str, Any]) -> Document:
        """Apply a partial update of a tenant's simulator settings and return the new document.

        Keys: display_name, connectors_created_disabled, app_roles (template ids), delays,
        faults (both partial; None in them removes the override), consent_decision.
        """
        with self.edit(tenant_id, "update-tenant", {"keys": sorted(update)}) as document:
            if "delays" in update:
                document["delays"] = apply_overrides(document.get("delays", {}), validate_delays(update["delays"]))
            if "faults" in update:
                document["faults"] = apply_overrides(document.get("faults", {}), validate_faults(update["faults"]))
            for key in ("display_name", "connectors_created_disabled", "app_roles"):
                if key in update:
                    document[key] = update[key]
            if "consent_decision" in update:
                document["consent"]["decision"] = update["consent_decision"]
        return self.tenant(tenant_id)

    def set_consent(self, tenant_id: str, granted: bool, permissions: list[str] | None, operation: str) -> None:
        """Grant (with `permissions`, or the app's) or revoke the provider app's consent in a tenant."""
        app_permissions = list((self.app or {}).get("permissions", []))
        with self.edit(tenant_id, operation, {"granted": granted}) as document:
            consent = document["consent"]
            # Consenting again keeps the service principal, so an earlier grant time stays.
            if not (granted and consent["granted"] and consent["granted_at"]):
                consent["granted_at"] = iso(self.clock.now()) if granted else None
            consent["granted"] = granted
            if not granted:
                consent["permissions"] = []
            elif permissions is not None:
                consent["permissions"] = list(permissions)
            else:
                consent["permissions"] = app_permissions

    # --- mutation log ---------------------------------------------------------------------------------

    def _log(self, tenant_id: str | None, operation: str, detail: Mapping[str, Any]) -> None:
        self._connection.execute(
            "INSERT INTO mutations (at, tenant_id, operation, detail) VALUES (?, ?, ?, ?)",
            (iso(self.clock.now()), tenant_id, operation, json.dumps(detail, default=str)),
        )
        logger.info("simulator mutation: tenant=%s operation=%s detail=%s", tenant_id, operation, json.dumps(detail, default=str)[:500])

    def record(self, operation: str, detail: Mapping[str, Any], tenant_id: str | None = None) -> None:
        """Write an event that changes no tenant document (such as a clock jump) to the mutation log."""
        with self._lock, self._transaction():
            self._log(tenant_id, operation, detail)

    def mutations(self, tenant_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Return the latest `limit` mutations, oldest first, for one tenant or for all."""
        query = "SELECT id, at, tenant_id, operation, detail FROM mutations"
        parameters: tuple[Any, ...] = ()
        if tenant_id is not None:
            query += " WHERE tenant_id = ?"
            parameters = (tenant_id,)
        query += " ORDER BY id DESC LIMIT ?"

        with self._lock:
            rows = self._connection.execute(query, (*parameters, limit)).fetchall()
        return [
            {"id": row[0], "at": row[1], "tenant_id": row[2], "operation": row[3], "detail": json.loads(row[4])}
            for row in reversed(rows)
        ]

    # --- mail flow --------------------------------------------------------------------------------------

    def mail_view(self, now: datetime, tenant_ids: list[str] | None = None) -> list[TenantMailView]:
        """Return, per tenant (all, or those in `tenant_ids`), the accepted domains and inbound connectors in effect at `now`.

        The SMTP front door attributes mail with it. A domain verified less than the
        accepted-domain delay ago is not listed yet. A connector created, changed or removed
        less than the connector delay ago still acts in its previous form (or not at all).
        """
        views = []
        with self._lock:
            selected = self._tenants if tenant_ids is None else {
                tenant_id: self._tenants[tenant_id] for tenant_id in tenant_ids if tenant_id in self._tenants
            }
            for tenant_id, document in selected.items():
                domains = tuple(entry["id"] for entry in tenants.accepted_domains_at(document, now))
                connectors = []
                for entry in document["inbound_connectors"]:
                    fields = tenants.connector_at(entry, now)
                    if fields is not None:
                        connectors.append(fields)
                views.append(TenantMailView(tenant_id, document["initial_domain"], domains, tuple(connectors)))
        return views


__all__ = ["SimulatorState", "TenantMailView", "DEFAULT_DELAYS"]
