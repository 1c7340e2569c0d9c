"""App-only tokens (MSAL, certificate credential) and the admin-consent URL and callback."""

from __future__ import annotations

from tenanttls.identity.consent import ConsentResult, build_admin_consent_url, parse_consent_callback
from tenanttls.identity.tokens import TokenProvider

__all__ = ["ConsentResult", "TokenProvider", "build_admin_consent_url", "parse_consent_callback"]
