"""Typed records for Microsoft Graph `domain` resources."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Domain:
    """A Graph `domain` resource (`GET /v1.0/domains/{id}`)."""

    id: str
    is_verified: bool
    is_default: bool = False
    is_initial: bool = False
    is_root: bool = True
    authentication_type: str = "Managed"
    supported_services: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_graph(cls, raw: Mapping[str, Any]) -> "Domain":
        """Build a record from a Graph domain object (KeyError if `id` is missing)."""
        return cls(
            id=str(raw["id"]).lower(),
            is_verified=bool(raw.get("isVerified", False)),
            is_default=bool(raw.get("isDefault", False)),
            is_initial=bool(raw.get("isInitial", False)),
            is_root=bool(raw.get("isRoot", True)),
            authentication_type=str(raw.get("authenticationType") or "Managed"),
            supported_services=tuple(raw.get("supportedServices") or ()),
            raw=dict(raw),
        )


@dataclass(frozen=True)
class VerificationDnsRecord:
    """One record of `GET /v1.0/domains/{id}/verificationDnsRecords`.

    For ``recordType == "Txt"``, `text` is the ``MS=ms########`` proof value;
    for ``"Mx"``, `mail_exchange` is set instead.
    """

    record_type: str
    label: str
    ttl: int
    text: str | None = None
    mail_exchange: str | None = None
    preference: int | None = None
    is_optional: bool = False
    supported_service: str = "Email"

    @classmethod
    def from_graph(cls, raw: Mapping[str, Any]) -> "VerificationDnsRecord":
        """Build a record from one object of the `value` array (KeyError if recordType or label is missing)."""
        return cls(
            record_type=str(raw["recordType"]),
            label=str(raw["label"]).lower(),
            ttl=int(raw.get("ttl") or 3600),
            text=raw.get("text"),
            mail_exchange=raw.get("mailExchange"),
            preference=raw.get("preference"),
            is_optional=bool(raw.get("isOptional", False)),
            supported_service=str(raw.get("supportedService") or "Email"),
        )
