"""A small reader of the generated PowerShell scripts, for tests (PowerShell is not installed).

It reads the values block with PowerShell's rules for the literal forms the
generator writes (single-quoted strings with doubled quotes, ``[char]`` codes,
``$true``/``$false``/``$null``, integers, ``@(...)`` arrays and ``@{...}`` hashtables),
and finds every call of an Exchange Online or Microsoft Graph cmdlet with its
parameters and enclosing function.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tenanttls.manual import powershell

# PowerShell's tokenizer takes these five characters as single quotes (CharTraits.cs, IsSingleQuote).
SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"

MICROSOFT_CMDLETS = (
    "Get-InboundConnector",
    "New-InboundConnector",
    "Set-InboundConnector",
    "Remove-InboundConnector",
    "Get-AcceptedDomain",
    "Get-ConnectionInformation",
    "Connect-ExchangeOnline",
    "Get-MgContext",
    "Connect-MgGraph",
    "Get-MgDomain",
    "New-MgDomain",
    "Get-MgDomainVerificationDnsRecord",
    "Confirm-MgDomain",
)
_CMDLET = re.compile(r"(?<![\w-])(" + "|".join(re.escape(c) for c in MICROSOFT_CMDLETS) + r")(?![\w-])")
_FUNCTION = re.compile(r"^function ([A-Za-z]+-[A-Za-z]+)")


class ReadError(ValueError):
    """The text is not in a form this reader understands."""


@dataclass
class Call:
    """One cmdlet call as written: named parameters, splatted variables, enclosing function."""

    function: str | None
    cmdlet: str
    parameters: dict[str, Any] = field(default_factory=dict)
    splats: list[str] = field(default_factory=list)
    line: int = 0


class _Cursor:
    def __init__(self, text: str, position: int = 0) -> None:
        self.text = text
        self.position = position

    def peek(self) -> str:
        return self.text[self.position] if self.position < len(self.text) else ""

    def skip_space(self, newlines: bool = False) -> None:
        spaces = " \t\n" if newlines else " \t"
        while self.peek() and self.peek() in spaces:
            self.position += 1

    def take(self, expected: str) -> None:
        if not self.text.startswith(expected, self.position):
            raise ReadError(f"expected {expected!r} at {self.text[self.position:self.position + 30]!r}")
        self.position += len(expected)


def read_values(script: str) -> dict[str, Any]:
    """Return the variables of the values block, evaluated as PowerShell would."""
    start = script.index(powershell.VALUES_START) + len(powershell.VALUES_START)
    end = script.index(powershell.VALUES_END)
    cursor = _Cursor(script[start:end])
    values: dict[str, Any] = {}
    while True:
        cursor.skip_space(newlines=True)
        if not cursor.peek():
            return values
        match = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*) = ").match(cursor.text, cursor.position)
        if not match:
            raise ReadError(f"expected an assignment at {cursor.text[cursor.position:cursor.position + 40]!r}")
        cursor.position = match.end()
        values[match.group(1)] = _expression(cursor, values)
        cursor.skip_space()
        if cursor.peek() not in ("\n", ""):
            raise ReadError(f"text after the value of ${match.group(1)}: {cursor.text[cursor.position:cursor.position + 40]!r}")


def _expression(cursor: _Cursor, variables: dict[str, Any]) -> Any:
    character = cursor.peek()
    if character in SINGLE_QUOTES:
        return _single_quoted(cursor)
    if cursor.text.startswith("@(", cursor.position):
        return _array(cursor, variables)
    if cursor.text.startswith("@{", cursor.position):
        return _hashtable(cursor, variables)
    if character == "(":
        return _sum(cursor, variables)
    if character == "$":
        return _variable(cursor, variables)
    number = re.compile(r"-?\d+").match(cursor.text, cursor.position)
    if number:
        cursor.position = number.end()
        return int(number.group())
    raise ReadError(f"unknown expression at {cursor.text[cursor.position:cursor.position + 30]!r}")


def _single_quoted(cursor: _Cursor) -> str:
    cursor.position += 1
    result = []
    while True:
        character = cursor.peek()
        if not character:
            raise ReadError("unterminated string")
        cursor.position += 1
        if character in SINGLE_QUOTES:
            if cursor.peek() and cursor.peek() in SINGLE_QUOTES:
                result.append(cursor.peek())
                cursor.position += 1
                continue
            return "".join(result)
        result.append(character)


def _sum(cursor: _Cursor, variables: dict[str, Any]) -> str:
    cursor.take("(")
    parts = []
    while True:
        cursor.skip_space()
        char_code = re.compile(r"\[char\]0x([0-9A-F]{4})").match(cursor.text, cursor.position)
        if char_code and not parts:
            raise ReadError("a sum must start with a string, or PowerShell adds character codes")
        if char_code:
            parts.append(chr(int(char_code.group(1), 16)))
            cursor.position = char_code.end()
        else:
            parts.append(_expression(cursor, variables))
        cursor.skip_space()
        if cursor.peek() == ")":
            cursor.position += 1
            break
        cursor.take("+")
    joined = "".join(parts)
    # Surrogate pairs from [char] codes become one character, as .NET strings hold UTF-16.
    return joined.encode("utf-16-le", "surrogatepass").decode("utf-16-le")


def _variable(cursor: _Cursor, variables: dict[str, Any]) -> Any:
    match = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)").match(cursor.text, cursor.position)
    if not match:
        raise ReadError("invalid variable")
    cursor.position = match.end()
    name = match.group(1)
    constants = {"true": True, "false": False, "null": None}
    if name.lower() in constants:
        return constants[name.lower()]
    if name not in variables:
        raise ReadError(f"unknown variable ${name}")
    return variables[name]


def _array(cursor: _Cursor, variables: dict[str, Any]) -> list[Any]:
    cursor.take("@(")
    items = []
    cursor.skip_space()
    while cursor.peek() != ")":
        items.append(_expression(cursor, variables))
        cursor.skip_space()
        if cursor.peek() == ",":
            cursor.position += 1
            cursor.skip_space()
    cursor.take(")")
    return items


def _hashtable(cursor: _Cursor, variables: dict[str, Any]) -> dict[str, Any]:
    cursor.take("@{")
    table: dict[str, Any] = {}
    while True:
        cursor.skip_space(newlines=True)
        if cursor.peek() == ";":
            cursor.position += 1
            continue
        if cursor.peek() == "}":
            cursor.position += 1
            return table
        key = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*").match(cursor.text, cursor.position)
        if not key:
            raise ReadError(f"expected 'Key = value' at {cursor.text[cursor.position:cursor.position + 30]!r}")
        cursor.position = key.end()
        table[key.group(1)] = _expression(cursor, variables)


def read_calls(script: str, variables: dict[str, Any] | None = None) -> list[Call]:
    """Return every Microsoft cmdlet call after the values block, in text order.

    Parameter values that are variables are resolved from `variables` (by default
    the values block); unknown variables are kept as ``"$Name"`` text.
    """
    values = dict(read_values(script) if variables is None else variables)
    body_start = script.index(powershell.VALUES_END)
    first_line = script[:body_start].count("\n") + 1
    calls = []
    function = None
    for number, line in enumerate(script[body_start:].split("\n"), start=first_line):
        defined = _FUNCTION.match(line)
        if defined:
            function = defined.group(1)
        if line.lstrip().startswith("#"):
            continue
        for match in _CMDLET.finditer(line):
            call = Call(function=function, cmdlet=match.group(1), line=number)
            _arguments(_Cursor(line, match.end()), call, values)
            calls.append(call)
    return calls


def _arguments(cursor: _Cursor, call: Call, values: dict[str, Any]) -> None:
    while True:
        cursor.skip_space()
        character = cursor.peek()
        if character in ("", "|", ")", "}", ";"):
            return
        parameter = re.compile(r"-([A-Za-z]+)(:?)").match(cursor.text, cursor.position)
        if parameter:
            cursor.position = parameter.end()
            cursor.skip_space()
            if parameter.group(2) or cursor.peek() not in ("", "|", ")", "}", ";", "-"):
                call.parameters[parameter.group(1)] = _argument(cursor, values)
            else:
                call.parameters[parameter.group(1)] = True
            continue
        splat = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)").match(cursor.text, cursor.position)
        if splat:
            cursor.position = splat.end()
            call.splats.append(splat.group(1))
            continue
        raise ReadError(f"unexpected argument text {cursor.text[cursor.position:]!r} in line {call.line}")


def _argument(cursor: _Cursor, values: dict[str, Any]) -> Any:
    if cursor.peek() == "$":
        match = re.compile(r"\$([A-Za-z_][A-Za-z0-9_:]*)").match(cursor.text, cursor.position)
        assert match is not None
        cursor.position = match.end()
        name = match.group(1)
        constants = {"true": True, "false": False, "null": None}
        if name.lower() in constants:
            return constants[name.lower()]
        return values.get(name, f"${name}")
    if cursor.text.startswith("@{", cursor.position):
        end = cursor.text.index("}", cursor.position)
        inner = cursor.text[cursor.position + 2 : end]
        cursor.position = end + 1
        table = {}
        for entry in inner.split(";"):
            key, _, value = entry.partition("=")
            table[key.strip()] = _argument(_Cursor(value.strip()), values)
        return table
    return _expression(cursor, values)
