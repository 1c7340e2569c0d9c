"""The relay: receives tenants' outbound mail, queues it on disk and delivers it to the
tenant's Exchange Online presenting the tenant's TLS client certificate.

Start with `Relay` (async) or `RelayThread`, configured by `RelaySettings`.
"""

from tenanttls.relay.certificates import StoreKeyPairs
from tenanttls.relay.hooks import LOOP_GUARD_HEADER, InboundMessage, LoopGuard, MessageRejected
from tenanttls.relay.receiver import TENANT_HEADER
from tenanttls.relay.server import Relay, RelayThread
from tenanttls.relay.settings import LegacyCertificate, RelaySettings

__all__ = [
    "LOOP_GUARD_HEADER",
    "TENANT_HEADER",
    "InboundMessage",
    "LegacyCertificate",
    "LoopGuard",
    "MessageRejected",
    "Relay",
    "RelaySettings",
    "RelayThread",
    "StoreKeyPairs",
]
