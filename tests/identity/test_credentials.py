"""TokenProvider's checks of its configuration, made before any request."""

from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tenanttls.errors import ConfigurationError, InvalidInput
from tenanttls.identity.tokens import TokenProvider

CLIENT_ID = "6a1d0c8e-6f3b-4c55-9d2e-0a6e8f1b2c3d"


def make_credentials():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tenanttls test app")])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    return key_pem, certificate_pem, certificate.fingerprint(hashes.SHA1()).hex()


@pytest.fixture(scope="module")
def credentials():
    return make_credentials()


def test_accepts_certificate_or_thumbprint(credentials):
    key_pem, certificate_pem, thumbprint = credentials

    TokenProvider(CLIENT_ID, key_pem, certificate_pem)
    TokenProvider(CLIENT_ID, key_pem.encode(), thumbprint)
    TokenProvider(CLIENT_ID, key_pem, ":".join(thumbprint[i : i + 2] for i in range(0, 40, 2)))


def test_rejects_mismatched_certificate(credentials):
    key_pem, _, _ = credentials
    _, other_certificate, _ = make_credentials()

    with pytest.raises(ConfigurationError, match="does not match its private key"):
        TokenProvider(CLIENT_ID, key_pem, other_certificate)


def test_rejects_bad_key(credentials):
    _, certificate_pem, _ = credentials

    with pytest.raises(ConfigurationError, match="not an unencrypted PEM private key"):
        TokenProvider(CLIENT_ID, "not a key", certificate_pem)


def test_rejects_sha256_thumbprint(credentials):
    key_pem, _, _ = credentials

    with pytest.raises(ConfigurationError, match="SHA-1 thumbprint"):
        TokenProvider(CLIENT_ID, key_pem, "ab" * 32)


def test_rejects_bad_client_id(credentials):
    key_pem, certificate_pem, _ = credentials

    with pytest.raises(ConfigurationError, match="'my-app'"):
        TokenProvider("my-app", key_pem, certificate_pem)


def test_repr_hides_key(credentials):
    key_pem, certificate_pem, _ = credentials

    text = repr(TokenProvider(CLIENT_ID, key_pem, certificate_pem))

    assert CLIENT_ID in text
    assert "PRIVATE KEY" not in text


@pytest.mark.parametrize(
    "tenant, scope",
    [("contoso.com", "https://graph.microsoft.com/.default"), ("contoso.onmicrosoft.com", "Domain.ReadWrite.All")],
    ids=["tenant", "scope"],
)
def test_get_token_validates_before_request(credentials, tenant, scope):
    key_pem, certificate_pem, _ = credentials
    provider = TokenProvider(CLIENT_ID, key_pem, certificate_pem, login_url="https://127.0.0.1:9")

    with pytest.raises(InvalidInput):
        provider.get_token(tenant, scope)
