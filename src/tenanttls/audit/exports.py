"""Reading export files into typed records.

An export is the output of ``Get-InboundConnector`` or ``Get-AcceptedDomain``, piped
to ``ConvertTo-Json`` or ``Format-List`` and saved to a file. `read_export` finds the
encoding, the form and the kind of objects, types every field, and finds the tenant
the objects belong to. Any problem raises `ExportError` naming the file and the line
or field; no export is returned half read.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from tenanttls.audit.dates import DateFormatError, DateOrder, default_date_order_with_reason, infer_date_order
from tenanttls.audit.decoding import decode_export
from tenanttls.audit.fields import (
    ACCEPTED_DOMAIN_FIELDS,
    CONNECTOR_FIELDS,
    DATE,
    FORMAT_LIST_LAST_FIELDS,
    REQUIRED_ACCEPTED_DOMAIN_FIELDS,
    REQUIRED_CONNECTOR_FIELDS,
    FieldContext,
    convert_value,
)
from tenanttls.audit.parsing import RawRecord, looks_like_json, parse_json_export, parse_list_export
from tenanttls.domain.exchange import AcceptedDomain, InboundConnector
from tenanttls.errors import ExportError

# The tenant's initial domain appears in DistinguishedName ("CN=<tenant>.onmicrosoft.com,CN=ConfigurationUnits")
# and OrganizationId ("…/Microsoft Exchange Hosted Organizations/<tenant>.onmicrosoft.com - …").
_TENANT_IN_PATH = re.compile(r"(?i)(?:CN=|Organizations/|ConfigurationUnits/)([a-z0-9-]+\.onmicrosoft\.com)\b")
_TENANT_FIELDS = ("DistinguishedName", "OrganizationId", "OrganizationalUnitRoot", "Id", "Identity")


class ExportKind(enum.Enum):
    """Which cmdlet produced an export."""

    CONNECTORS = "Get-InboundConnector"
    ACCEPTED_DOMAINS = "Get-AcceptedDomain"


@dataclass(frozen=True)
class ExportRecord:
    """One object of an export: typed values, where it starts, and the domain record built from it."""

    values: dict[str, Any]
    line: int
    tenant: str | None
    connector: InboundConnector | None = None
    accepted_domain: AcceptedDomain | None = None


@dataclass(frozen=True)
class Export:
    """A whole export file, read and typed."""

    path: str
    kind: ExportKind
    form: str  # "json" or "format-list"
    encoding: str
    records: tuple[ExportRecord, ...]
    tenant: str | None
    notes: tuple[str, ...] = ()
    unknown_fields: tuple[tuple[str, int], ...] = field(default=())

    @property
    def connectors(self) -> list[InboundConnector]:
        """The inbound connectors of this export (empty for an accepted-domain export)."""
        return [record.connector for record in self.records if record.connector is not None]

    @property
    def accepted_domains(self) -> list[AcceptedDomain]:
        """The accepted domains of this export (empty for a connector export)."""
        return [record.accepted_domain for record in self.records if record.accepted_domain is not None]


def read_export(
    path: str | Path,
    *,
    date_order: DateOrder | None = None,
    allow_unknown_fields: bool = False,
) -> Export:
    """Read, type and check one export file.

    Raises `ExportError` when the file cannot be read, is empty, is not an export of
    Get-InboundConnector or Get-AcceptedDomain, mixes tenants, lacks a required field,
    holds a value of the wrong type, or (unless `allow_unknown_fields`) has a field
    that neither cmdlet returns.
    """
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ExportError(f"{name}: cannot read the file ({error.strerror})", path=name) from error

    text, encoding = decode_export(data, name)
    if not text.strip():
        raise ExportError(
            f"{name}: the file is empty; the cmdlet returned nothing or the export failed, so export it again",
            path=name,
        )

    from_json = looks_like_json(text)
    raw_records = parse_json_export(text, name) if from_json else parse_list_export(text, name)
    if not raw_records:
        raise ExportError(f"{name}: the file contains no objects; export it again", path=name)

    kind = _detect_kind(raw_records, name)
    catalogue = CONNECTOR_FIELDS if kind is ExportKind.CONNECTORS else ACCEPTED_DOMAIN_FIELDS
    unknown = _unknown_fields(raw_records, catalogue, name, allow_unknown_fields)
    for raw in raw_records:
        _require_fields(raw, kind, name)
    if not from_json:
        _reject_incomplete_objects(raw_records, kind, name)

    notes: list[str] = []
    order = date_order or _file_date_order(raw_records, catalogue, from_json, name, notes)
    records = tuple(_type_record(raw, kind, catalogue, name, order, from_json) for raw in raw_records)
    tenant = _single_tenant(records, name)
    return Export(
        path=name,
        kind=kind,
        form="json" if from_json else "format-list",
        encoding=encoding,
        records=records,
        tenant=tenant,
        notes=tuple(notes),
        unknown_fields=unknown,
    )


def _detect_kind(records: list[RawRecord], path: str) -> ExportKind:
    first = records[0]
    keys = set(first.values)
    is_connector = bool(keys & {"ConnectorType", "TlsSenderCertificateName", "SenderDomains"})
    is_domain = bool(keys & {"DomainName", "DomainType"})
    if is_connector == is_domain:
        shown = ", ".join(sorted(keys)[:8]) or "none"
        raise ExportError(
            f"{path}:{first.line}: not an export of Get-InboundConnector or Get-AcceptedDomain "
            f"(fields found: {shown}); export one of those cmdlets",
            path=path,
            line=first.line,
        )
    return ExportKind.CONNECTORS if is_connector else ExportKind.ACCEPTED_DOMAINS


def _unknown_fields(
    records: list[RawRecord], catalogue: dict[str, str], path: str, allowed: bool
) -> tuple[tuple[str, int], ...]:
    unknown = []
    for record in records:
        for key in record.values:
            if key not in catalogue:
                unknown.append((key, record.line_of(key)))
    if unknown and not allowed:
        key, line = unknown[0]
        others = f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""
        raise ExportError(
            f"{path}:{line}: unknown field {key}{others}; check that the file is an unedited export, "
            "or pass --allow-unknown-fields to list them and go on",
            path=path,
            line=line,
            field=key,
        )
    return tuple(unknown)


def _file_date_order(
    records: list[RawRecord], catalogue: dict[str, str], from_json: bool, path: str, notes: list[str]
) -> DateOrder:
    if from_json:
        return DateOrder.DAY_FIRST  # JSON dates carry no culture, so the order is never used.

    texts = [str(v) for r in records for k, v in r.values.items() if catalogue.get(k) == DATE and v]
    try:
        order = infer_date_order(texts)
    except DateFormatError as error:
        raise ExportError(f"{path}: {error}", path=path) from error
    if order is None and texts:
        order, reason = default_date_order_with_reason(texts)
        other = "mdy" if order is DateOrder.DAY_FIRST else "dmy"
        notes.append(
            f"{path}: every day and month in the dates is 12 or less. They are read as "
            f"{'day/month' if order is DateOrder.DAY_FIRST else 'month/day'} because {reason}; "
            f"pass --date-order {other} if that is wrong"
        )
    return order or DateOrder.DAY_FIRST


def _require_fields(raw: RawRecord, kind: ExportKind, path: str) -> None:
    required = REQUIRED_CONNECTOR_FIELDS if kind is ExportKind.CONNECTORS else REQUIRED_ACCEPTED_DOMAIN_FIELDS
    missing = [name for name in required if name not in raw.values]
    if missing:
        raise ExportError(
            f"{path}:{raw.line}: the object that starts here lacks {', '.join(missing)}; the file looks "
            f"truncated or was made with Select-Object, so export all fields with '{kind.value}'",
            path=path,
            line=raw.line,
            field=missing[0],
        )


def _reject_incomplete_objects(records: list[RawRecord], kind: ExportKind, path: str) -> None:
    """Raise `ExportError` for a Format-List object that was cut off or lost fields.

    Format-List writes every property of an object, an empty one as ``Name :``, so the
    objects of one cmdlet in one file have the same fields. Exchange configuration
    objects end with IsValid and ObjectState, so an object without them stops early.
    """
    for record in records:
        missing = [name for name in FORMAT_LIST_LAST_FIELDS if name not in record.values]
        if missing:
            end = max(record.field_lines.values(), default=record.line)
            raise ExportError(
                f"{path}:{end}: the object that starts on line {record.line} stops here without "
                f"{', '.join(missing)}, which Format-List writes at the end of every {kind.value} object; "
                "the file looks cut off, so export it again",
                path=path,
                line=end,
                field=missing[0],
            )

    for index, record in enumerate(records):
        others = [set(other.values) for position, other in enumerate(records) if position != index]
        if not others:
            return
        missing = sorted(set.intersection(*others) - set(record.values))
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise ExportError(
                f"{path}:{record.line}: the object that starts here lacks {shown}, which every other object "
                "in the file has; the file looks cut off or edited, so export it again",
                path=path,
                line=record.line,
                field=missing[0],
            )


def _type_record(
    raw: RawRecord, kind: ExportKind, catalogue: dict[str, str], path: str, order: DateOrder, from_json: bool
) -> ExportRecord:
    values = {}
    for key, value in raw.values.items():
        context = FieldContext(path, raw.line_of(key), key, order)
        values[key] = convert_value(catalogue.get(key, "any"), value, context, from_json=from_json)

    tenant = _tenant_of(values)
    domain_form = _domain_form(values)
    if kind is ExportKind.CONNECTORS:
        _require_text(values, "Name", raw, path)
        return ExportRecord(values, raw.line, tenant, connector=InboundConnector.from_exchange(domain_form))
    _require_text(values, "DomainName", raw, path)
    return ExportRecord(values, raw.line, tenant, accepted_domain=AcceptedDomain.from_exchange(domain_form))


def _require_text(values: dict[str, Any], name: str, raw: RawRecord, path: str) -> None:
    if not values.get(name):
        line = raw.line_of(name)
        raise ExportError(f"{path}:{line}: field {name} is empty", path=path, line=line, field=name)


def _domain_form(values: dict[str, Any]) -> dict[str, Any]:
    """Return `values` in the admin-API form that the `domain.exchange` records read."""
    form: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, datetime):
            form[key] = value.isoformat()
        elif isinstance(value, tuple):
            form[key] = list(value)
        else:
            form[key] = value
    return form


def _tenant_of(values: dict[str, Any]) -> str | None:
    if values.get("InitialDomain") is True and str(values.get("DomainName", "")).lower().endswith(".onmicrosoft.com"):
        return str(values["DomainName"]).lower()
    for key in _TENANT_FIELDS:
        match = _TENANT_IN_PATH.search(str(values.get(key) or ""))
        if match:
            return match.group(1).lower()
    return None


def _single_tenant(records: Iterable[ExportRecord], path: str) -> str | None:
    tenant = None
    for record in records:
        if record.tenant is None:
            continue
        if tenant is None:
            tenant = record.tenant
        elif record.tenant != tenant:
            raise ExportError(
                f"{path}:{record.line}: this object belongs to {record.tenant}, earlier ones to {tenant}; "
                "export each tenant to its own file",
                path=path,
                line=record.line,
            )
    return tenant
