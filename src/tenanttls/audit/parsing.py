"""Splitting export text into records: ``ConvertTo-Json`` and ``Format-List`` output.

Both parsers return `RawRecord`s whose values are still in the file's form (JSON
types, or the text after ``Key : ``), each with the line it starts on, so that later
errors can point at the file and line. Typing the values is `fields`' job.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from tenanttls.errors import ExportError

# "Name                           : CrosswareInboundConnector"; the key column is padded with spaces.
_LIST_LINE = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*:(?: (?P<value>.*))?$")
_TABLE_RULE = re.compile(r"^-{2,}(\s+-{2,})*\s*$")


@dataclass
class RawRecord:
    """One object of an export, with values as written and the lines they came from."""

    values: dict[str, Any]
    line: int
    field_lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, name: str) -> int:
        """Return the line of field `name`, or the record's first line when unknown."""
        return self.field_lines.get(name, self.line)


def looks_like_json(text: str) -> bool:
    """Return True when the first non-blank character opens a JSON object or array."""
    stripped = text.lstrip()
    return stripped.startswith(("{", "["))


def parse_json_export(text: str, path: str) -> list[RawRecord]:
    """Return the objects of ``ConvertTo-Json`` output: one object, an array, or a ``value`` wrapper.

    Raises `ExportError` naming the line and column of invalid or truncated JSON.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        truncated = error.pos >= len(text.rstrip()) - 1
        reason = "the file ends early, so it looks truncated" if truncated else error.msg
        raise ExportError(
            f"{path}:{error.lineno}:{error.colno}: invalid JSON ({reason}); "
            "export it again with 'ConvertTo-Json -Depth 5 | Out-File -Encoding utf8'",
            path=path,
            line=error.lineno,
        ) from error

    starts = _element_starts(text)
    items = _unwrap_collection(document)
    if len(starts) != len(items):
        starts = [1] * len(items)

    records = []
    for item, start in zip(items, starts):
        line = text.count("\n", 0, start) + 1
        if not isinstance(item, dict):
            raise ExportError(
                f"{path}:{line}: expected an object with connector or accepted-domain fields, "
                f"found {type(item).__name__} {str(item)[:40]!r}",
                path=path,
                line=line,
            )
        records.append(RawRecord(values=item, line=line, field_lines=_json_field_lines(text, start, item)))
    return records


def _unwrap_collection(document: Any) -> list[Any]:
    # Windows PowerShell 5.1 sometimes writes an array as {"value": [...], "Count": n}.
    if isinstance(document, dict) and set(document) <= {"value", "Count"} and isinstance(document.get("value"), list):
        return list(document["value"])
    if isinstance(document, list):
        return document
    return [document]


def _element_starts(text: str) -> list[int]:
    """Return the character offsets where each top-level object starts."""
    decoder = json.JSONDecoder()
    position = _skip_space(text, 0)
    if text.startswith("{", position):
        inner = re.match(r'\{\s*"value"\s*:\s*\[', text[position:])
        if not inner:
            return [position]
        position += inner.end() - 1

    starts = []
    position = _skip_space(text, position + 1)
    while position < len(text) and text[position] != "]":
        starts.append(position)
        _, end = decoder.raw_decode(text, position)
        position = _skip_space(text, end)
        if text.startswith(",", position):
            position = _skip_space(text, position + 1)
    return starts


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\n":
        position += 1
    return position


def _json_field_lines(text: str, start: int, item: dict[str, Any]) -> dict[str, int]:
    # NOTE: the first '"Key":' after the object's start is taken as the key's line; a nested
    # object with the same key before it would give a wrong line (only messages use it).
    lines = {}
    base_line = text.count("\n", 0, start) + 1
    for match in re.finditer(r'"([A-Za-z_][A-Za-z0-9_]*)"\s*:', text[start:]):
        key = match.group(1)
        if key in item and key not in lines:
            lines[key] = base_line + text.count("\n", start, start + match.start())
        if len(lines) == len(item):
            break
    return lines


def parse_list_export(text: str, path: str) -> list[RawRecord]:
    """Return the records of ``Format-List`` output: blocks of ``Key : Value`` lines.

    A line that starts with spaces continues the value above it, because Format-List
    wraps long values at the console width. Raises `ExportError` for text that is not
    in this form, naming the first line that does not fit.
    """
    lines = text.split("\n")
    _reject_other_forms(lines, path)

    records: list[RawRecord] = []
    current: RawRecord | None = None
    last_key: str | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            current, last_key = None, None
            continue

        if line[0] in " \t" and current is not None and last_key is not None:
            current.values[last_key] += line.strip()
            continue

        match = _LIST_LINE.match(line)
        if not match and not records:
            raise ExportError(
                f"{path}:{number}: the file is neither JSON nor Format-List output (it starts with "
                f"{line.strip()[:60]!r}); export with 'ConvertTo-Json -Depth 5' or 'Format-List'",
                path=path,
                line=number,
            )
        if not match:
            raise ExportError(
                f"{path}:{number}: expected 'Name : Value' as Format-List writes it, found {line.strip()[:60]!r}",
                path=path,
                line=number,
            )

        if current is None:
            current = RawRecord(values={}, line=number)
            records.append(current)
        key = match.group("key")
        if key in current.values:
            raise ExportError(
                f"{path}:{number}: field {key} appears twice in the record that starts on line {current.line}; "
                "leave a blank line between objects",
                path=path,
                line=number,
                field=key,
            )
        current.values[key] = match.group("value") or ""
        current.field_lines[key] = number
        last_key = key

    _reject_cut_last_line(text, lines, path)
    return records


def _reject_other_forms(lines: list[str], path: str) -> None:
    for number, line in enumerate(lines[:5], start=1):
        if line.startswith("#TYPE") or line.startswith('"'):
            raise ExportError(
                f"{path}:{number}: this looks like Export-Csv output, which tenanttls does not read; "
                "export with 'ConvertTo-Json -Depth 5' or 'Format-List' instead",
                path=path,
                line=number,
            )
        if _TABLE_RULE.match(line):
            raise ExportError(
                f"{path}:{number}: this looks like Format-Table output, which cuts values; "
                "export with 'Format-List' or 'ConvertTo-Json -Depth 5' instead",
                path=path,
                line=number,
            )


def _reject_cut_last_line(text: str, lines: list[str], path: str) -> None:
    # Format-List ends every record with a line break, so text that stops mid-line was cut off.
    if text and not text.endswith("\n"):
        number = len(lines)
        raise ExportError(
            f"{path}:{number}: the file ends in the middle of a line, so it looks truncated; export it again",
            path=path,
            line=number,
        )
