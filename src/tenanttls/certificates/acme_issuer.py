"""`AcmeIssuer`: certificates from an ACME CA (RFC 8555) with DNS-01 challenges.

One issuance, in order:
    1. load or register the ACME account (its key is kept encrypted in the store);
    2. create a key pair and a CSR whose subject CN and SAN are exactly the name;
    3. create the order, skipping authorizations the CA reports valid (reused);
    4. publish each challenge's TXT record at ``_acme-challenge.<name>`` and wait
       until the authoritative server returns it;
    5. respond to the challenges, poll the authorizations, finalize, download the full chain;
    6. remove every TXT record published in step 4, on success and on failure.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import josepy
import requests
from acme import challenges, client, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.engine import Engine

from tenanttls import __version__
from tenanttls.certificates import repository
from tenanttls.certificates.issuer import IssuedCertificate, issued_from_pem
from tenanttls.certificates.keystore import KeyStore
from tenanttls.clock import Clock, SystemClock
from tenanttls.dns.publisher import DnsPublisher
from tenanttls.domain.names import validate_domain_name
from tenanttls.errors import CertificateError, ConfigurationError, InvalidInput

logger = logging.getLogger(__name__)

BACKEND = "acme"
_BAD_NONCE_ATTEMPTS = 8


class AcmeAccounts:
    """ACME account keys kept in the store, encrypted with the key-encryption key."""

    def __init__(self, engine: Engine, keystore: KeyStore, clock: Clock | None = None) -> None:
        self._engine = engine
        self._keystore = keystore
        self._clock = clock or SystemClock()

    def load(self, directory_url: str) -> tuple[ec.EllipticCurvePrivateKey, str | None] | None:
        """Return the account key and account URL kept for `directory_url`, or None."""
        with self._engine.connect() as connection:
            account = repository.find_account(connection, directory_url)
        if account is None:
            return None

        key_pem = self._keystore.decrypt(account.key_ciphertext, directory_url.encode())
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CertificateError(f"the stored ACME account key for {directory_url} is not an EC key")
        return key, account.account_uri

    def save(self, directory_url: str, key: ec.EllipticCurvePrivateKey, account_uri: str | None) -> None:
        """Store the account key (encrypted) and URL for `directory_url`.

        Raises `ConfigurationError` when the store contains keys encrypted under another
        key-encryption key.
        """
        ciphertext = self._keystore.encrypt(_private_pem(key), directory_url.encode())
        with self._engine.begin() as connection:
            self._keystore.check_stored_key_ids(repository.count_key_ids(connection))
            repository.save_account(connection, directory_url, ciphertext, account_uri, self._clock.now())


class _PatientNetwork(client.ClientNetwork):
    """A `ClientNetwork` that sends a request up to eight times while the server rejects its nonce (``badNonce``).

    RFC 8555 section 6.5 lets a server reject any nonce, and the acme package
    retries only once. Pebble rejects 5% of good nonces on purpose.
    """

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        for attempt in range(1, _BAD_NONCE_ATTEMPTS + 1):
            try:
                return self._post_once(*args, **kwargs)
            except messages.Error as error:
                if error.code != "badNonce" or attempt == _BAD_NONCE_ATTEMPTS:
                    raise
                logger.debug("acme nonce rejected, retrying: attempt=%d", attempt)
        raise AssertionError("unreachable")


class AcmeIssuer:
    """Issue certificates from an ACME CA, proving control of the name with DNS-01 through `publisher`."""

    backend = BACKEND

    def __init__(
        self,
        directory_url: str,
        publisher: DnsPublisher,
        accounts: AcmeAccounts,
        ca_bundle: str | Path | None = None,
        *,
        roots: Sequence[x509.Certificate] | None = None,
        profile: str | None = None,
        contact: str | None = None,
        order_timeout: float = 90.0,
        propagation_timeout: float = 60.0,
        record_ttl: int = 60,
        network_timeout: float = 30.0,
    ) -> None:
        if not directory_url.startswith("https://"):
            raise ConfigurationError(
                f"invalid acme_directory {directory_url!r}: the URL must start with https://, because ACME (RFC 8555) "
                "runs over HTTPS; set the CA's https:// directory URL"
            )
        self.directory_url = directory_url
        self._publisher = publisher
        self._accounts = accounts
        self._verify: str | bool = str(ca_bundle) if ca_bundle else True
        self._roots = list(roots) if roots is not None else None
        self._profile = profile or None
        self._contact = contact or None
        self._order_timeout = order_timeout
        self._propagation_timeout = propagation_timeout
        self._record_ttl = record_ttl
        self._network_timeout = network_timeout
        self._lock = threading.Lock()
        self._client: client.ClientV2 | None = None
        self._account_key: josepy.JWKEC | None = None

    def trust_roots(self) -> list[x509.Certificate] | None:
        """Return the roots the CA's chains lead to, or None when not configured."""
        return self._roots

    def issue(self, name: str) -> IssuedCertificate:
        """Order and download a certificate for `name`; raise `CertificateError` or `DnsError` on failure.

        Every TXT record this call published is removed before it returns or raises.
        """
        try:
            name = validate_domain_name(name, what="certificate name")
        except InvalidInput as error:
            raise CertificateError(str(error)) from error

        # One order at a time per issuer: the acme client's nonce pool is not thread-safe.
        with self._lock:
            started = time.monotonic()
            try:
                with _converted_errors(self.directory_url, name):
                    acme_client, account_key = self._connect()
                    key = ec.generate_private_key(ec.SECP256R1())
                    order = acme_client.new_order(_csr(key, name), profile=self._profile)
                    order = self._validate_and_finalize(acme_client, account_key, order, name)
            except Exception:
                # Reconnect next time: the CA may have restarted or dropped the account.
                self._client = self._account_key = None
                raise

        issued = issued_from_pem(name, order.fullchain_pem, _private_pem(key).decode("ascii"), BACKEND)
        logger.info(
            "certificate issued: name=%s serial=%s backend=%s seconds=%.2f",
            name, issued.serial, BACKEND, time.monotonic() - started,
        )
        return issued

    def _validate_and_finalize(
        self, acme_client: client.ClientV2, account_key: josepy.JWKEC, order: messages.OrderResource, name: str
    ) -> messages.OrderResource:
        published: list[tuple[str, str]] = []
        try:
            pending = self._publish_challenges(order, account_key, name, published)
            for fqdn, value in published:
                self._publisher.wait_until_visible(fqdn, value, self._propagation_timeout)
            for challenge_body in pending:
                acme_client.answer_challenge(challenge_body, challenge_body.chall.response(account_key))

            # The acme package compares deadlines with naive local time.
            deadline = dt.datetime.now() + dt.timedelta(seconds=self._order_timeout)
            return acme_client.poll_and_finalize(order, deadline)
        finally:
            self._remove_records(published, name)

    def _publish_challenges(
        self,
        order: messages.OrderResource,
        account_key: josepy.JWKEC,
        name: str,
        published: list[tuple[str, str]],
    ) -> list[messages.ChallengeBody]:
        """Publish a TXT record for each pending authorization; append each to `published` once it is added."""
        pending = []
        for authorization in order.authorizations:
            identifier = authorization.body.identifier.value
            if authorization.body.status == messages.STATUS_VALID:
                logger.info("acme authorization reused: name=%s identifier=%s", name, identifier)
                continue

            challenge_body = _dns01(authorization, name)
            fqdn = challenge_body.chall.validation_domain_name(identifier)
            value = challenge_body.chall.validation(account_key)
            self._publisher.add_txt(fqdn, value, ttl=self._record_ttl)
            published.append((fqdn, value))
            pending.append(challenge_body)
        return pending

    def _remove_records(self, published: list[tuple[str, str]], name: str) -> None:
        """Remove every published challenge record; log, and do not raise, when one cannot be removed.

        A failure here must not hide the issuance's own result or error.
        """
        for fqdn, value in published:
            try:
                self._publisher.remove_txt(fqdn, value)
            except Exception as error:  # any failure leaves a record behind; report it and go on
                logger.error(
                    "acme challenge record left in DNS: name=%s fqdn=%s error=%s; remove the TXT record by hand",
                    name, fqdn, error,
                )

    def _connect(self) -> tuple[client.ClientV2, josepy.JWKEC]:
        """Return a client bound to the ACME account, registering the account on first use."""
        if self._client is not None and self._account_key is not None:
            return self._client, self._account_key

        stored = self._accounts.load(self.directory_url)
        key = stored[0] if stored else ec.generate_private_key(ec.SECP256R1())
        account_key = josepy.JWKEC(key=key)
        network = _PatientNetwork(
            key=account_key,
            alg=josepy.ES256,
            verify_ssl=self._verify,
            user_agent=f"tenanttls/{__version__}",
            timeout=int(self._network_timeout),
        )
        directory = client.ClientV2.get_directory(self.directory_url, network)
        acme_client = client.ClientV2(directory, network)

        registration = messages.NewRegistration.from_data(email=self._contact, terms_of_service_agreed=True)
        try:
            account = acme_client.new_account(registration)
            account_uri = account.uri
            logger.info("acme account registered: directory=%s account=%s", self.directory_url, account_uri)
        except errors.ConflictError as existing:
            # The key already has an account; the CA returns its URL instead of a new one.
            account_uri = existing.location
            network.account = messages.RegistrationResource(uri=account_uri, body=messages.Registration())

        if stored is None or stored[1] != account_uri:
            self._accounts.save(self.directory_url, key, account_uri)
        self._client, self._account_key = acme_client, account_key
        return acme_client, account_key


_CONVERTED = (errors.Error, messages.Error, requests.exceptions.RequestException, josepy.errors.Error)


@contextmanager
def _converted_errors(directory_url: str, name: str) -> Iterator[None]:
    """Convert the acme package's and the network's errors into `CertificateError` with the CA's words."""
    try:
        yield
    except _CONVERTED as error:
        raise CertificateError(_describe(error, directory_url, name)) from error


def _describe(error: Exception, directory_url: str, name: str) -> str:
    if isinstance(error, errors.ValidationError):
        problems = [
            f"{challenge.chall.typ}: {challenge.error.detail or challenge.error.typ}"
            for authorization in error.failed_authzrs
            for challenge in authorization.body.challenges
            if challenge.error is not None
        ]
        return (
            f"ACME server could not validate {name}: {'; '.join(problems) or 'no detail given'}; check that "
            "the CA queries the DNS server the TXT records are published on"
        )
    if isinstance(error, errors.IssuanceError):
        return f"ACME server rejected the order for {name}: {_problem(error.error)}"
    if isinstance(error, messages.Error):
        return f"ACME server {directory_url} returned a problem for {name}: {_problem(error)}"
    if isinstance(error, errors.TimeoutError):
        return f"ACME order for {name} timed out at {directory_url}; the CA did not finish validation or issuance in time"
    if isinstance(error, requests.exceptions.SSLError):
        return f"TLS verification of ACME server {directory_url} failed: {error}; check acme_ca_bundle"
    if isinstance(error, requests.exceptions.RequestException):
        return f"ACME server {directory_url} is unreachable: {error.__class__.__name__}; check acme_directory"
    return f"ACME request for {name} to {directory_url} failed: {error.__class__.__name__}: {error}"


def _problem(problem: messages.Error) -> str:
    """Render an RFC 7807 problem document: type, detail and any subproblems."""
    text = f"{problem.typ} {problem.detail or ''}".strip()
    for subproblem in problem.subproblems or ():
        text += f"; {subproblem.typ} {subproblem.detail or ''}".rstrip()
    return text


def _dns01(authorization: messages.AuthorizationResource, name: str) -> messages.ChallengeBody:
    for challenge_body in authorization.body.challenges:
        if isinstance(challenge_body.chall, challenges.DNS01):
            return challenge_body
    offered = ", ".join(challenge_body.chall.typ for challenge_body in authorization.body.challenges)
    raise CertificateError(f"ACME server offers no dns-01 challenge for {name} (offered: {offered or 'none'})")


def _csr(key: ec.EllipticCurvePrivateKey, name: str) -> bytes:
    """Return a PEM CSR whose subject CN and only SAN are `name`."""
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM)


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
