"""Build the relay's store-backed parts from the shared configuration."""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine

from tenanttls.relay.certificates import StoreKeyPairs

logger = logging.getLogger(__name__)


def key_pairs_from(settings, engine: Engine) -> StoreKeyPairs | None:
    """Return the source of unique certificates, or None when no key-encryption key is configured.

    Without one the relay can present only the legacy certificate; a tenant switched
    to its unique certificate then gets 451 4.7.5 until the key is configured.
    """
    from tenanttls.certificates.keystore import KeyStore

    if not settings.key_encryption_key:
        logger.warning("relay: key_encryption_key is not set; only the legacy certificate can be presented")
        return None
    return StoreKeyPairs(engine, KeyStore.from_reference(settings.key_encryption_key))
