"""Reading tenant lists (CSV or JSON) for ``tenanttls tenants import``.

A file lists tenant id, initial domain (``*.onmicrosoft.com``) and display name.
The whole file is checked before anything is stored, and each error names the
line, so a fixed file can be imported again.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenanttls.domain.names import validate_domain_name, validate_tenant_id
from tenanttls.errors import InvalidInput
from tenanttls.store.tenants import TenantRecord

COLUMNS = ("tenant_id", "initial_domain", "display_name")
# Header spellings accepted for each column, compared after lower-casing and removing spaces, "-" and "_".
_ALIASES = {
    "tenantid": "tenant_id",
    "id": "tenant_id",
    "initialdomain": "initial_domain",
    "domain": "initial_domain",
    "displayname": "display_name",
    "name": "display_name",
}


@dataclass(frozen=True)
class ImportRow:
    """One tenant read from a file, with the line it starts on."""

    line: int
    tenant: TenantRecord


def read_tenant_file(path: Path) -> list[ImportRow]:
    """Return the tenants listed in `path` (``.json`` or CSV), or raise `InvalidInput` naming each bad line."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError as error:
        raise InvalidInput(f"tenant file not found: {path}") from error
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"cannot read tenant file {path}: {error}") from error

    if Path(path).suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
        entries = _json_entries(text, path)
    else:
        entries = _csv_entries(text, path)
    return _validate(entries, path)


def _csv_entries(text: str, path: Path) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text))
    rows = [(reader.line_num, row) for row in reader]
    rows = [(line, row) for line, row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise InvalidInput(f"{path}: the file is empty; expected a header line {','.join(COLUMNS)} and one tenant per line")

    header_line, header = rows[0]
    columns = [_ALIASES.get(cell.strip().lower().replace(" ", "").replace("-", "").replace("_", "")) for cell in header]
    if "tenant_id" not in columns or "initial_domain" not in columns:
        raise InvalidInput(
            f"{path}, line {header_line}: invalid header {','.join(header)!r}; "
            f"expected the columns {','.join(COLUMNS)} (display_name is optional)"
        )

    entries = []
    for line, row in rows[1:]:
        if len(row) > len(columns):
            raise InvalidInput(f"{path}, line {line}: {len(row)} fields, the header has {len(columns)}; quote values that contain commas")
        values = {column: cell.strip() for column, cell in zip(columns, row) if column}
        entries.append((line, values))
    return entries


def _json_entries(text: str, path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(f"{path}, line {error.lineno}: invalid JSON: {error.msg}") from error

    if isinstance(document, dict) and isinstance(document.get("tenants"), list):
        items = document["tenants"]
        start = text.index("[", text.index('"tenants"'))
    elif isinstance(document, list):
        items = document
        start = text.index("[")
    else:
        raise InvalidInput(f"{path}, line 1: expected a JSON array of tenants or an object with a 'tenants' array")

    lines = _item_lines(text, start, len(items))
    entries = []
    for line, item in zip(lines, items):
        if not isinstance(item, dict):
            raise InvalidInput(f"{path}, line {line}: expected an object with {', '.join(COLUMNS)}, got {type(item).__name__}")
        entries.append((line, {_ALIASES.get(key.lower().replace("_", ""), key): value for key, value in item.items()}))
    return entries


def _item_lines(text: str, array_start: int, count: int) -> list[int]:
    """Return the line on which each element of the JSON array at `array_start` begins."""
    decoder = json.JSONDecoder()
    position = array_start + 1
    lines = []
    for _ in range(count):
        while text[position] in " \t\r\n,":
            position += 1
        lines.append(text.count("\n", 0, position) + 1)
        _, position = decoder.raw_decode(text, position)
    return lines


def _validate(entries: list[tuple[int, dict[str, Any]]], path: Path) -> list[ImportRow]:
    rows: list[ImportRow] = []
    seen: dict[str, int] = {}
    seen_domains: dict[str, int] = {}
    for line, values in entries:
        record = _record(values, line, path)
        if record.tenant_id in seen:
            raise InvalidInput(f"{path}, line {line}: tenant {record.tenant_id} is listed twice (first on line {seen[record.tenant_id]})")
        if record.initial_domain in seen_domains:
            raise InvalidInput(
                f"{path}, line {line}: initial domain {record.initial_domain} is listed twice "
                f"(first on line {seen_domains[record.initial_domain]})"
            )
        seen[record.tenant_id] = line
        seen_domains[record.initial_domain] = line
        rows.append(ImportRow(line, record))
    return rows


def _record(values: dict[str, Any], line: int, path: Path) -> TenantRecord:
    try:
        tenant_id = validate_tenant_id(str(values.get("tenant_id") or ""))
        domain = validate_domain_name(str(values.get("initial_domain") or ""), what="initial domain")
    except InvalidInput as error:
        raise InvalidInput(f"{path}, line {line}: {error}") from error

    if not domain.endswith(".onmicrosoft.com"):
        raise InvalidInput(
            f"{path}, line {line}: invalid initial domain {domain!r}: expected the tenant's "
            "'<name>.onmicrosoft.com' domain"
        )
    display_name = str(values.get("display_name") or "").strip()
    if len(display_name) > 256:
        raise InvalidInput(f"{path}, line {line}: display name has {len(display_name)} characters, the maximum is 256")
    return TenantRecord(tenant_id=tenant_id, initial_domain=domain, display_name=display_name)
