"""The portal's own configuration: its public URL, the app registration and the session key."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from tenanttls.config import resolve_secret
from tenanttls.domain.names import validate_tenant_id
from tenanttls.errors import ConfigurationError

logger = logging.getLogger(__name__)

SESSION_KEY_FILE = "portal-session.key"
# The session key signs cookies with HMAC; 32 random bytes match SHA-256's block strength.
SESSION_KEY_BYTES = 32
DEFAULT_OPERATOR_ROLE = "Portal.Operator"


@dataclass(frozen=True)
class PortalConfig:
    """The portal's own settings, besides the store and the Microsoft clients.

    `public_url` is the address browsers use (``https://portal.example.com`` behind a
    reverse proxy); redirect URIs and the CSRF origin check are built from it.
    `provider_tenant_id` is the provider's own tenant, where operators sign in; an empty
    value turns the operator sign-in off. `operator_role` is the app role an operator
    must hold there.
    """

    public_url: str
    login_url: str
    client_id: str
    session_secret: bytes = field(repr=False)
    provider_tenant_id: str = ""
    operator_role: str = DEFAULT_OPERATOR_ROLE
    session_lifetime: timedelta = timedelta(hours=8)
    connector_name: str = "CrosswareInboundConnector"
    legacy_certificate_name: str = "*.crossware.co.nz"
    grace: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        parts = urlsplit(self.public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ConfigurationError(
                f"invalid portal URL {self.public_url!r}: expected scheme and host only, like 'https://portal.example.com'"
            )
        if not self.client_id:
            raise ConfigurationError("client_id is not set; the portal signs users in with the app registration's client id")
        if self.provider_tenant_id:
            object.__setattr__(self, "provider_tenant_id", validate_tenant_id(self.provider_tenant_id))
        if len(self.session_secret) < 16:
            raise ConfigurationError("the portal session secret is shorter than 16 bytes; use at least 32 random bytes")

    @property
    def origin(self) -> str:
        """The portal's origin, ``scheme://host[:port]``, as browsers send it in ``Origin``."""
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def https(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def sign_in_redirect_uri(self) -> str:
        """The redirect URI of the sign-in flow; register it on the app registration."""
        return f"{self.origin}/auth/callback"

    @property
    def consent_redirect_uri(self) -> str:
        """The redirect URI of the admin-consent flow; register it on the app registration."""
        return f"{self.origin}/consent/callback"

    @property
    def login_origin(self) -> str:
        parts = urlsplit(self.login_url)
        return f"{parts.scheme}://{parts.netloc}"


def load_session_secret(reference: str, data_dir: Path) -> bytes:
    """Return the key that signs session cookies.

    With a secret reference (``env:NAME`` or ``file:/path``) the key comes from there.
    Otherwise it is read from ``DATA/portal-session.key``, which is created with mode
    0600 on first use, so sessions survive a restart of the portal.
    """
    if reference:
        return resolve_secret(reference, what="portal session secret").strip()

    path = data_dir / SESSION_KEY_FILE
    if path.exists():
        return path.read_bytes().strip()

    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(SESSION_KEY_BYTES).encode()
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key)
    logger.info("portal session key created: path=%s", path)
    return key
