"""Several export files of one tenant, read together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tenanttls.audit.dates import DateOrder
from tenanttls.audit.exports import Export, ExportKind, read_export
from tenanttls.domain.exchange import AcceptedDomain, InboundConnector
from tenanttls.errors import ExportError


@dataclass(frozen=True)
class ExportSet:
    """The exports given for one tenant, with their objects merged."""

    tenant: str | None
    exports: tuple[Export, ...]

    @property
    def has_connectors(self) -> bool:
        """True when a Get-InboundConnector export was given."""
        return any(export.kind is ExportKind.CONNECTORS for export in self.exports)

    @property
    def has_accepted_domains(self) -> bool:
        """True when a Get-AcceptedDomain export was given."""
        return any(export.kind is ExportKind.ACCEPTED_DOMAINS for export in self.exports)

    @property
    def connectors(self) -> list[InboundConnector]:
        """All connectors; one object exported twice (same Guid and name) is listed once."""
        return _unique([c for export in self.exports for c in export.connectors], lambda c: (c.guid, c.name))

    @property
    def accepted_domains(self) -> list[AcceptedDomain]:
        """All accepted domains; one object exported twice (same Guid and name) is listed once."""
        domains = [d for export in self.exports for d in export.accepted_domains]
        return _unique(domains, lambda d: (d.raw.get("Guid") or d.raw.get("ExchangeObjectId"), d.domain_name))

    @property
    def notes(self) -> list[str]:
        """Notes from reading the files, such as an assumed date order."""
        return [note for export in self.exports for note in export.notes]


def _unique(items: list, key) -> list:  # type: ignore[type-arg]
    seen = set()
    result = []
    for item in items:
        identity = key(item)
        if identity[0] and identity in seen:
            continue
        if identity[0]:
            seen.add(identity)
        result.append(item)
    return result


def read_export_set(
    paths: Sequence[str | Path],
    *,
    tenant: str | None = None,
    date_order: DateOrder | None = None,
    allow_unknown_fields: bool = False,
    expected_from: str = "--tenant",
    other_tenant_fix: str = "audit each tenant's files separately",
) -> ExportSet:
    """Read every file in `paths` and check that they belong to one tenant.

    `tenant`, when it is a ``*.onmicrosoft.com`` name, must match the tenant that
    each file names. `expected_from` says where `tenant` came from and
    `other_tenant_fix` what to do about a file of another tenant, in the words of
    the calling command. Raises `ExportError` on the first file that cannot be read
    or belongs to another tenant, so no report is built from part of the files.
    """
    if not paths:
        raise ExportError("no export files given; pass the files of Get-InboundConnector and Get-AcceptedDomain")

    expected = tenant.lower() if tenant and tenant.lower().endswith(".onmicrosoft.com") else None
    found = expected
    found_in = expected_from if expected else None
    exports = []
    for path in paths:
        export = read_export(path, date_order=date_order, allow_unknown_fields=allow_unknown_fields)
        if export.tenant and found and export.tenant != found:
            raise ExportError(
                f"{export.path}: the objects belong to {export.tenant}, but {found_in} names {found}; {other_tenant_fix}",
                path=export.path,
            )
        if export.tenant and not found:
            found, found_in = export.tenant, export.path
        exports.append(export)
    return ExportSet(tenant=found or tenant, exports=tuple(exports))
