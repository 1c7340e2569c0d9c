"""Calls to the simulator's inspection API (``/_simulator/...``) for the client tests."""

from __future__ import annotations

import ssl
from typing import Any

import httpx


def inspect(simulator, method: str, path: str, json: Any = None) -> Any:
    """Send one inspection request and return its JSON body (None for 204)."""
    context = ssl.create_default_context(cafile=str(simulator.ca_path))
    response = httpx.request(method, simulator.base_url + "/_simulator" + path, json=json, verify=context)
    response.raise_for_status()
    return None if response.status_code == 204 else response.json()


def calls(simulator) -> dict[str, Any]:
    """Return the simulator's call counts: ``total``, ``by_endpoint``, ``by_tenant``, ``faults``."""
    return inspect(simulator, "GET", "/calls")
