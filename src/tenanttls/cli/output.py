"""Helpers the command modules share: who runs a command, and JSON output."""

from __future__ import annotations

import getpass
import json
import socket
from typing import Any

import typer


def actor() -> str:
    """Return the audit actor for a command run here: ``cli:USER@HOST``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def print_json(value: Any) -> None:
    """Print `value` as indented JSON, keeping non-ASCII names readable."""
    typer.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))
