"""An example seed with realistic Exchange values, and a fresh app certificate to go with it.

The values follow published ``Get-InboundConnector`` and ``Get-AcceptedDomain`` output:
``SenderDomains`` as ``smtp:*;1``, ``ConnectorSource`` ``AdminUI`` and ``HybridWizard``,
``ConnectorType`` in the lower-case form ``onPremises`` that some tenants return, and an
IP-restricted gateway connector. Tenant names are placeholders (Contoso, Fabrikam).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tenanttls.errors import InvalidInput

CONTOSO_ID = "8c2f9a41-5b7e-4d3c-9f1a-2e6b8d0c4a7f"
FABRIKAM_ID = "d4e7a0b3-1c9f-4e2a-8b5d-7f3c6a9e1b02"
EXAMPLE_CLIENT_ID = "0e5a8c3b-6f1d-4d2a-9b7e-2c4f8a1d3e5b"


def new_app_certificate(common_name: str = "tenanttls provider app") -> tuple[str, str]:
    """Return (private key PEM, self-signed certificate PEM) for the provider app, valid two years."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=730))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return key_pem.decode(), certificate.public_bytes(serialization.Encoding.PEM).decode()


def write_private_key(path: Path, key_pem: str) -> None:
    """Write `key_pem` to `path` with mode 0600, replacing a file that is there.

    The key goes to a new file in the same folder, created with mode 0600, which then
    replaces `path` by rename. So the key is never readable by others, even when `path`
    existed with wider permissions. Raises InvalidInput naming the path and the fix when
    the folder is missing or not writable.
    """
    folder = path.parent
    try:
        # mkstemp creates the file with mode 0600.
        descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except FileNotFoundError as error:
        raise InvalidInput(
            f"cannot write the private key to {path}: the folder {folder} does not exist; create it or choose another --key-out"
        ) from error
    except OSError as error:
        raise InvalidInput(f"cannot write the private key to {path}: {error.strerror}; choose another --key-out") from error

    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(key_pem)
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise InvalidInput(f"cannot write the private key to {path}: {error.strerror}; choose another --key-out") from error


def example_seed(certificate_pem: str, client_id: str = EXAMPLE_CLIENT_ID) -> dict[str, Any]:
    """Return a seed with two tenants: Contoso (consented, legacy connector) and Fabrikam (awaiting consent)."""
    legacy = {
        "Name": "CrosswareInboundConnector",
        "Enabled": True,
        "ConnectorType": "OnPremises",
        "ConnectorSource": "AdminUI",
        "Comment": None,
        "SenderDomains": ["smtp:*;1"],
        "SenderIPAddresses": [],
        "RequireTls": True,
        "RestrictDomainsToCertificate": True,
        "RestrictDomainsToIPAddresses": False,
        "TlsSenderCertificateName": "*.crossware.co.nz",
        "CloudServicesMailEnabled": True,
        "TreatMessagesAsInternal": False,
        "WhenCreatedUTC": "2021-03-09T22:14:05Z",
        "WhenChangedUTC": "2023-10-30T08:51:47Z",
    }
    return {
        "app": {
            "client_id": client_id,
            "display_name": "Crossware Mail Signature",
            "certificates": [certificate_pem],
            "redirect_uris": ["https://portal.crossware.example/admin/setup/connector/consent"],
            "permissions": ["Exchange.ManageAsApp", "Domain.ReadWrite.All"],
        },
        "settings": {
            "delays": {"accepted_domain_seconds": "15m", "connector_seconds": "30m", "consent_seconds": 0},
            "page_size": 1000,
        },
        "tenants": [
            {
                "tenant_id": CONTOSO_ID,
                "initial_domain": "contoso.onmicrosoft.com",
                "display_name": "Contoso",
                "accepted_domains": [
                    {"DomainName": "contoso.com", "DomainType": "Authoritative", "Default": True},
                    {"DomainName": "mail.contoso.com", "DomainType": "InternalRelay"},
                ],
                "inbound_connectors": [legacy],
                "outbound_connectors": [
                    {
                        "Name": "Crossware Outbound Connector",
                        "Enabled": True,
                        "ConnectorType": "Partner",
                        "ConnectorSource": "AdminUI",
                        "SmartHosts": ["smtp.crossware.co.nz"],
                        "UseMXRecord": False,
                        "TlsSettings": "DomainValidation",
                        "TlsDomain": "*.crossware.co.nz",
                        "RecipientDomains": [],
                        "IsTransportRuleScoped": True,
                    }
                ],
                "transport_rules": [
                    {
                        "Name": "Route outbound mail through Crossware",
                        "State": "Enabled",
                        "Mode": "Enforce",
                        "FromScope": "InOrganization",
                        "SentToScope": "NotInOrganization",
                        "RouteMessageOutboundConnector": "Crossware Outbound Connector",
                    }
                ],
                "consent": {"granted": True},
                "app_roles": ["Exchange Administrator"],
            },
            {
                "tenant_id": FABRIKAM_ID,
                "initial_domain": "fabrikam.onmicrosoft.com",
                "display_name": "Fabrikam",
                "accepted_domains": ["fabrikam.com"],
                "inbound_connectors": [
                    {**legacy, "ConnectorType": "onPremises", "ConnectorSource": "HybridWizard"},
                    {
                        "Name": "Fabrikam Gateway",
                        "Enabled": True,
                        "ConnectorType": "Partner",
                        "ConnectorSource": "AdminUI",
                        "Comment": None,
                        "SenderDomains": ["smtp:*;1"],
                        "SenderIPAddresses": ["192.0.2.10", "192.0.2.11", "198.51.100.20", "203.0.113.0/24"],
                        "AssociatedAcceptedDomains": [],
                        "RequireTls": False,
                        "RestrictDomainsToIPAddresses": True,
                        "RestrictDomainsToCertificate": False,
                        "CloudServicesMailEnabled": True,
                        "TreatMessagesAsInternal": False,
                        "TlsSenderCertificateName": None,
                        "EFSkipLastIP": False,
                        "EFTestMode": False,
                    },
                ],
                "consent": {"granted": False},
                "consent_decision": "accept",
                "app_roles": ["Exchange Administrator"],
                "connectors_created_disabled": True,
                "delays": {"accepted_domain_seconds": "1h"},
            },
        ],
    }
