"""Errors of the simulated Exchange admin API, in the shape InvokeCommand returns them.

A failed cmdlet returns::

    {"error": {"code": "NotFound", "message": "Error executing cmdlet",
               "details": [{"code": "Client", "target": "",
                            "message": "Ex6F9304|Microsoft.Exchange...Exception|readable text"}],
               "innererror": {"message": ..., "type": ..., "internalexception": {...}}}}

Clients take the readable text after the second ``|`` of ``details[0].message``; the text itself may contain ``|``.
"""

from __future__ import annotations

import hashlib
from typing import Any

NOT_FOUND_EXCEPTION = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
BINDING_EXCEPTION = "System.Management.Automation.ParameterBindingException"
VALIDATION_EXCEPTION = "Microsoft.Exchange.Data.DataValidationException"
# NOTE: the exception type Exchange Online reports for a duplicate connector name is unconfirmed;
# on-premises Exchange reports this Active Directory exception for duplicate objects.
ALREADY_EXISTS_EXCEPTION = "Microsoft.Exchange.Data.Directory.ADObjectAlreadyExistsException"
TASK_EXCEPTION = "Microsoft.Exchange.Management.Tasks.TaskException"


def show(value: object, limit: int = 100) -> str:
    """Render a caller's value for an error message: control characters escaped, cut to `limit` characters."""
    text = str(value)
    escaped = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    if len(escaped) > limit:
        escaped = escaped[: limit - 3] + "..."
    return escaped


def error_id(exception_type: str) -> str:
    """Return a stable ``Ex`` + 6 hex digits error id for an exception type, as Exchange prefixes its errors."""
    return "Ex" + hashlib.sha256(exception_type.encode()).hexdigest()[:6].upper()


class CmdletError(Exception):
    """A cmdlet failed; rendered as InvokeCommand's error body with HTTP `status`."""

    def __init__(self, exception_type: str, text: str, *, status: int = 400, code: str = "BadRequest") -> None:
        super().__init__(text)
        self.exception_type = exception_type
        self.text = text
        self.status = status
        self.code = code

    def body(self) -> dict[str, Any]:
        """Return the JSON error body."""
        detail = f"{error_id(self.exception_type)}|{self.exception_type}|{self.text}"
        return {
            "error": {
                "code": self.code,
                "message": "Error executing cmdlet",
                "details": [{"code": "Client", "target": "", "message": detail}],
                "innererror": {
                    "message": "Error executing cmdlet",
                    "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
                    "internalexception": {"message": self.text, "type": self.exception_type, "stacktrace": ""},
                },
            }
        }


def binding_error(text: str) -> CmdletError:
    """Return the error PowerShell parameter binding raises (wrong name, type or a missing parameter)."""
    return CmdletError(BINDING_EXCEPTION, text)


def validation_error(text: str) -> CmdletError:
    """Return the error Exchange raises when a parameter combination or value is invalid."""
    return CmdletError(VALIDATION_EXCEPTION, text)


def not_found(identity: str, server: str) -> CmdletError:
    """Return the ManagementObjectNotFoundException for an Identity that names no object."""
    return CmdletError(
        NOT_FOUND_EXCEPTION,
        f"The operation couldn't be performed because object '{show(identity)}' couldn't be found on '{server}'.",
        status=404,
        code="NotFound",
    )


def request_error(code: str, message: str) -> dict[str, Any]:
    """Return an error body for a request that never reached a cmdlet (bad JSON, throttling, faults)."""
    return {"error": {"code": code, "message": message}}
