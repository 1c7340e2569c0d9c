"""PowerShell literals for values that come from tenants, so that no value can run code.

Every string becomes a single-quoted literal, in which PowerShell expands nothing:
no ``$variables``, no ``$(subexpressions)``, no backtick escapes. The only special
characters inside one are single quotes, and PowerShell's tokenizer treats four
Unicode quotation marks as single quotes too (U+2018, U+2019, U+201A, U+201B; see
``IsSingleQuote`` in PowerShell's ``CharTraits.cs``). A quote inside the literal is
doubled, as PowerShell's own ``CodeGeneration.EscapeSingleQuotedStringContent`` does.

Characters outside printable ASCII (control characters, line breaks, and every
non-ASCII character, the Unicode quotes among them) are written as ``[char]`` codes
outside the quotes: ``('Contoso' + [char]0x2019 + 's')``. The script is then pure
ASCII, so it means the same whichever code page reads it; Windows PowerShell 5.1
reads a file without a byte order mark as ANSI, where UTF-8 bytes 0x91 and 0x92
would read as quotation marks.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from tenanttls.errors import InvalidInput

SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
_SINGLE_QUOTE = re.compile(f"([{SINGLE_QUOTES}])")

# Runs of characters that may stand inside a single-quoted literal: printable ASCII.
_PLAIN_RUN = re.compile(r"[\x20-\x7e]+")

# Hashtable keys and variable names are written bare, so they must be plain identifiers.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def quote_string(value: str) -> str:
    """Return a PowerShell expression, in printable ASCII, that evaluates to exactly `value`.

    Printable ASCII text becomes one single-quoted literal. Other text becomes a
    sum such as ``('a' + [char]0x000A + 'b')`` that starts with a string, so
    PowerShell concatenates instead of adding character codes.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"invalid script value {value!r}: expected text")
    if _PLAIN_RUN.fullmatch(value) or value == "":
        return _single_quoted(value)

    parts: list[str] = []
    position = 0
    for match in _PLAIN_RUN.finditer(value):
        parts += _char_codes(value[position : match.start()])
        parts.append(_single_quoted(match.group()))
        position = match.end()
    parts += _char_codes(value[position:])

    if not parts[0].startswith("'"):
        parts.insert(0, "''")
    return "(" + " + ".join(parts) + ")"


def _single_quoted(text: str) -> str:
    return "'" + _SINGLE_QUOTE.sub(r"\1\1", text) + "'"


def _char_codes(text: str) -> list[str]:
    # [char] holds one UTF-16 code unit, so a character outside the BMP becomes two surrogates.
    data = text.encode("utf-16-le", "surrogatepass")
    units = [int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)]
    return [f"[char]0x{unit:04X}" for unit in units]


def quote_value(value: Any) -> str:
    """Return a PowerShell expression for a string, bool, int, None or list of strings."""
    if value is None:
        return "$null"
    if isinstance(value, bool):
        return "$true" if value else "$false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return quote_string(value)
    if isinstance(value, (list, tuple)):
        return "@(" + ", ".join(quote_value(item) for item in value) + ")"
    raise InvalidInput(f"invalid script value {value!r}: expected text, a boolean, a number or a list")


def quote_identifier(name: str) -> str:
    """Return `name` after checking it is a plain identifier, safe as a bare key or variable name."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise InvalidInput(f"invalid PowerShell name {name!r}: use letters, digits and '_' only")
    return name


def render_hashtable(values: Mapping[str, Any], indent: str = "    ") -> str:
    """Return a multi-line ``@{ Key = value }`` literal, one quoted entry per line."""
    lines = ["@{"]
    for key, value in values.items():
        lines.append(f"{indent}{quote_identifier(key)} = {quote_value(value)}")
    lines.append("}")
    return "\n".join(lines)


def render_assignment(name: str, value: Any) -> str:
    """Return ``$Name = <literal>``; mappings become hashtables."""
    if isinstance(value, Mapping):
        return f"${quote_identifier(name)} = {render_hashtable(value)}"
    return f"${quote_identifier(name)} = {quote_value(value)}"
