"""Binding of InvokeCommand `Parameters` to cmdlet parameters, the way PowerShell binds them.

Parameter names match case-insensitively. Values are converted as PowerShell converts
arguments: a number or a Boolean becomes a string for a string parameter, a string becomes
a one-element list for a multi-valued parameter, but a string is never accepted for a
Boolean parameter. Conversion errors carry PowerShell's own wording.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from tenanttls.simulator.exchange.errors import binding_error, show

STRING = "string"
BOOLEAN = "bool"
SWITCH = "switch"
LIST = "list"
ENUM = "enum"
RESULT_SIZE = "result_size"

# NOTE: Exchange does not document length limits for most string parameters; these caps
# keep one request from storing unbounded text and are guesses.
MAX_STRING_LENGTH = 1024
MAX_LIST_ITEMS = 1000


@dataclass(frozen=True)
class Parameter:
    """One cmdlet parameter: its name, kind, whether it is mandatory and, for enums, the .NET type and names."""

    name: str
    kind: str
    required: bool = False
    type_name: str = ""
    choices: tuple[str, ...] = field(default_factory=tuple)
    # Multi-valued parameters of Set-* cmdlets also take {"Add": [...], "Remove": [...]}.
    allow_add_remove: bool = False
    not_null: bool = False
    # Maximum characters of a string value (or of each item of a list); None means MAX_STRING_LENGTH.
    max_length: int | None = None


def _net_type(value: Any) -> str:
    """Return the .NET type name PowerShell shows for a JSON value."""
    if isinstance(value, bool):
        return "System.Boolean"
    if isinstance(value, int):
        return "System.Int64"
    if isinstance(value, float):
        return "System.Double"
    if isinstance(value, str):
        return "System.String"
    if isinstance(value, list):
        return "System.Object[]"
    if isinstance(value, dict):
        return "System.Collections.Hashtable"
    return "System.Object"


def bind(parameters: tuple[Parameter, ...], raw: Any) -> dict[str, Any]:
    """Return the bound values of `raw` (the `Parameters` object) by canonical parameter name.

    Raises the ParameterBindingException error for an unknown or repeated name, a value
    that cannot be converted, or a missing mandatory parameter.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise binding_error(f"Cannot bind the parameters: expected a JSON object, got {_net_type(raw)}.")

    by_name = {parameter.name.lower(): parameter for parameter in parameters}
    bound: dict[str, Any] = {}
    for key, value in raw.items():
        parameter = by_name.get(str(key).lower())
        if parameter is None:
            raise binding_error(f"A parameter cannot be found that matches parameter name '{show(key)}'.")
        if parameter.name in bound:
            raise binding_error(
                f"Cannot bind parameter because parameter '{parameter.name}' is specified more than once. "
                "To provide multiple values to parameters that can accept multiple values, use the array syntax."
            )
        bound[parameter.name] = _convert(parameter, value)

    missing = [parameter.name for parameter in parameters if parameter.required and parameter.name not in bound]
    if missing:
        raise binding_error(
            f"Cannot process command because of one or more missing mandatory parameters: {' '.join(missing)}."
        )
    return bound


def _convert(parameter: Parameter, value: Any) -> Any:
    if parameter.kind == STRING:
        return _convert_string(parameter, value)
    if parameter.kind in (BOOLEAN, SWITCH):
        return _convert_boolean(parameter, value)
    if parameter.kind == LIST:
        return _convert_list(parameter, value)
    if parameter.kind == ENUM:
        return _convert_enum(parameter, value)
    return _convert_result_size(parameter, value)


def _null_or_empty(parameter: Parameter) -> Exception:
    return binding_error(
        f"Cannot validate argument on parameter '{parameter.name}'. The argument is null or empty. "
        "Provide an argument that is not null or empty, and then try the command again."
    )


def _convert_string(parameter: Parameter, value: Any) -> str | None:
    if value is None or value == "":
        if parameter.required or parameter.not_null:
            raise _null_or_empty(parameter)
        return None

    if isinstance(value, bool):
        text = "True" if value else "False"
    elif isinstance(value, (int, float, str)):
        text = str(value)
    else:
        raise binding_error(
            f"Cannot convert '{_net_type(value)}' to the type 'System.String' required by parameter "
            f"'{parameter.name}'. Specified method is not supported."
        )

    _check_text(parameter, text)
    return text


def _check_text(parameter: Parameter, text: str) -> None:
    if "\x00" in text:
        raise binding_error(f"Cannot validate argument on parameter '{parameter.name}'. The value contains a NUL character.")
    maximum = parameter.max_length or MAX_STRING_LENGTH
    if len(text) > maximum:
        raise binding_error(
            f"Cannot validate argument on parameter '{parameter.name}'. The length of the argument ({len(text)}) "
            f"is longer than the maximum length of {maximum} characters."
        )


def _convert_boolean(parameter: Parameter, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0

    shown = "" if value is None else _net_type(value)
    raise binding_error(
        f"Cannot process argument transformation on parameter '{parameter.name}'. Cannot convert value "
        f"\"{shown}\" to type \"System.Boolean\". Boolean parameters accept only Boolean values and numbers, "
        "such as $True, $False, 1 or 0."
    )


def _convert_items(parameter: Parameter, value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_LIST_ITEMS:
        raise binding_error(
            f"Cannot validate argument on parameter '{parameter.name}'. The number of provided arguments "
            f"({len(items)}) exceeds the maximum number of allowed arguments ({MAX_LIST_ITEMS})."
        )

    converted = []
    for item in items:
        if isinstance(item, bool) or item is None or isinstance(item, (list, dict)):
            raise binding_error(
                f"Cannot process argument transformation on parameter '{parameter.name}'. Cannot convert "
                f"'{_net_type(item)}' to the type 'Microsoft.Exchange.Data.MultiValuedProperty' required by "
                f"parameter '{parameter.name}'."
            )
        text = str(item)
        _check_text(parameter, text)
        converted.append(text)
    return converted


def _convert_list(parameter: Parameter, value: Any) -> list[str] | dict[str, list[str]]:
    if value is None:
        return []

    if isinstance(value, dict):
        keys = {key.lower(): key for key in value if key != "@odata.type"}
        if not parameter.allow_add_remove or not keys or set(keys) - {"add", "remove"}:
            raise binding_error(
                f"Cannot process argument transformation on parameter '{parameter.name}'. Cannot convert the "
                "hash table to a MultiValuedProperty: only the keys Add and Remove are allowed."
            )
        return {
            "Add": _convert_items(parameter, value[keys["add"]]) if "add" in keys else [],
            "Remove": _convert_items(parameter, value[keys["remove"]]) if "remove" in keys else [],
        }

    return _convert_items(parameter, value)


def _convert_enum(parameter: Parameter, value: Any) -> str:
    if isinstance(value, str):
        for choice in parameter.choices:
            if value.strip().lower() == choice.lower():
                return choice

    raise binding_error(
        f"Cannot process argument transformation on parameter '{parameter.name}'. Cannot convert value "
        f"\"{show(value)}\" to type \"{parameter.type_name}\". Error: \"Unable to match the identifier name "
        f"{show(value)} to a valid enumerator name. Specify one of the following enumerator names and try again: "
        f"{', '.join(parameter.choices)}\""
    )


def _convert_result_size(parameter: Parameter, value: Any) -> int | None:
    if isinstance(value, str) and value.strip().lower() == "unlimited":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 2**32 - 1:
        return value

    raise binding_error(
        f"Cannot process argument transformation on parameter '{parameter.name}'. Cannot convert value "
        f"\"{show(value)}\" to type \"Microsoft.Exchange.Data.Unlimited`1[System.UInt32]\". Error: \"The value must be "
        "a whole number from 1 to 4294967295, or Unlimited.\""
    )
