"""The Exchange Online admin API client (``InvokeCommand``) for inbound connectors and accepted domains."""

from __future__ import annotations

from tenanttls.exchange.client import EXCHANGE_SCOPE, ExchangeClient
from tenanttls.exchange.responses import InvokeResult

__all__ = ["EXCHANGE_SCOPE", "ExchangeClient", "InvokeResult"]
