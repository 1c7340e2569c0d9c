"""The Microsoft Graph client for a tenant's domains (add, read, verify, delete)."""

from __future__ import annotations

from tenanttls.graph.client import GRAPH_SCOPE, GraphDomainsClient

__all__ = ["GRAPH_SCOPE", "GraphDomainsClient"]
