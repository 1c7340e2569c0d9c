"""The simulator's SMTP front door: one listener for every ``<tenant>.mail.protection.outlook.com``.

A sending server connects, issues STARTTLS and may present a client certificate.
The front door requests one, verifies it against the CAs it is configured to
trust, and attributes each recipient of a message to a tenant the way Exchange
Online does for mail that arrives on an OnPremises inbound connector (Microsoft
Message Center MC1226222, February 2026):

1. the certificate's subject or SAN name, when it is an accepted domain of a tenant
   that has an enabled OnPremises inbound connector whose `TlsSenderCertificateName`
   matches the name (exactly, or as a ``*.`` wildcard);
2. the MAIL FROM domain, when it is an accepted domain of a tenant whose connector
   matches the certificate;
3. the RCPT TO domain, when it is an accepted domain of a tenant.

Mail attributed by step 1 or 2 may be relayed to any recipient. A recipient that
only step 3 could attribute must be in that tenant; any other recipient gets
``550 5.7.64 TenantAttribution; Relay Access Denied``. So a certificate that every
customer shares (``*.crossware.co.nz``, an accepted domain of no tenant) works for
normal mail through step 2, but mail with an empty MAIL FROM (automatic replies,
non-delivery reports) to outside recipients is rejected.

The tenants' accepted domains and connectors come from a view provider, a
callable that returns the configuration in effect for mail at a given time, so
that connector changes take effect after the simulator's propagation delay. The
front door keeps every decision and every accepted message for inspection.

This module imports nothing from the relay or the Microsoft clients.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.policy import default as default_policy
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from aiosmtpd.smtp import SMTP, Envelope, Session, TLSSetupException
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from tenanttls.clock import Clock, SystemClock
from tenanttls.domain.exchange import normalise_connector_type, normalise_sender_domain
from tenanttls.domain.names import is_guid

logger = logging.getLogger(__name__)

RELAY_ACCESS_DENIED = "550 5.7.64 TenantAttribution; Relay Access Denied"
# NOTE: only the 4.7.0 code and the reason word CertificateExpired follow Exchange. Its
# exact reply text is unconfirmed, so the rest is this simulator's own wording.
CERTIFICATE_EXPIRED = "451 4.7.0 Temporary server error, TLS client certificate rejected: CertificateExpired"
ATTRIBUTION_HEADER = "X-EOPTenantAttributedMessage"

# The default maximum receive size of Exchange Online mailboxes (36 MB).
DEFAULT_DATA_SIZE_LIMIT = 36 * 1024 * 1024
DEFAULT_MAX_RECORDS = 200_000

# OpenSSL's X509_V_FLAG_NO_CHECK_TIME. The TLS layer still checks the chain, and the
# front door checks the validity period itself against the simulator's clock, so
# that an expired certificate gets Exchange's deferral instead of a failed handshake.
_X509_V_FLAG_NO_CHECK_TIME = 0x200000

STEP_CERTIFICATE = "certificate"
STEP_MAIL_FROM = "mail-from"
STEP_RCPT_TO = "rcpt-to"


# --- The configuration the front door reads ------------------------------------------------


@dataclass(frozen=True)
class TenantMailView:
    """One tenant's mail configuration in effect at a moment.

    `inbound_connectors` are objects with Exchange's field names (``Name``,
    ``Enabled``, ``ConnectorType``, ``TlsSenderCertificateName``, ``SenderDomains``).
    """

    tenant_id: str
    accepted_domains: tuple[str, ...]
    inbound_connectors: tuple[Mapping[str, Any], ...] = ()


ViewProvider = Callable[[datetime], Iterable[Any]]


def _field(item: Any, *names: str) -> Any:
    """Return the first of `names` that `item` has as a key or attribute, or None."""
    for name in names:
        if isinstance(item, Mapping) and name in item:
            return item[name]
        if hasattr(item, name):
            return getattr(item, name)
    return None


def _domain_name(item: Any) -> str:
    if isinstance(item, str):
        return item.lower().rstrip(".")
    return str(_field(item, "DomainName", "domain_name", "name")).lower().rstrip(".")


def _connector_fields(item: Any) -> Mapping[str, Any]:
    if isinstance(item, Mapping):
        return item
    raw = getattr(item, "raw", None)
    return raw if isinstance(raw, Mapping) else vars(item)


def as_mail_view(item: Any) -> TenantMailView:
    """Return `item` as a `TenantMailView`.

    Accepts a `TenantMailView`, or any mapping or object with ``tenant_id``,
    ``accepted_domains`` (names or Exchange ``AcceptedDomain`` objects) and
    ``inbound_connectors`` (Exchange field dicts or records with ``raw``).
    """
    if isinstance(item, TenantMailView):
        return item
    domains = tuple(_domain_name(domain) for domain in _field(item, "accepted_domains", "AcceptedDomains") or ())
    connectors = tuple(
        _connector_fields(connector) for connector in _field(item, "inbound_connectors", "InboundConnectors") or ()
    )
    return TenantMailView(str(_field(item, "tenant_id", "TenantId")), domains, connectors)


# --- The presented certificate ---------------------------------------------------------------


@dataclass(frozen=True)
class PeerCertificate:
    """The client certificate a sending server presented after STARTTLS."""

    names: tuple[str, ...]  # subject CN first, then the DNS SAN names; lower case, no repeats
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime

    def is_expired(self, now: datetime) -> bool:
        """Return True when `now` is outside the certificate's validity period."""
        return not self.not_before <= now <= self.not_after

    def summary(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "subject": self.subject,
            "issuer": self.issuer,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
        }


def parse_peer_certificate(der: bytes) -> PeerCertificate:
    """Parse a DER certificate into the names Exchange matches and its validity period."""
    certificate = x509.load_der_x509_certificate(der)
    names: list[str] = []
    for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        names.append(str(attribute.value).lower())

    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names.extend(name.lower() for name in extension.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        pass

    return PeerCertificate(
        names=tuple(dict.fromkeys(names)),
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )


def certificate_name_matches(pattern: str | None, name: str) -> bool:
    """Return True when a connector's `TlsSenderCertificateName` matches a certificate name.

    ``*.contoso.com`` matches one label in its place (``mail.contoso.com``) and the
    same wildcard on the certificate; other names match exactly. Case is ignored.
    """
    if not pattern:
        return False
    pattern = pattern.strip().lower().rstrip(".")
    name = name.strip().lower().rstrip(".")
    if pattern == name:
        return True
    if not pattern.startswith("*."):
        return False

    label, _, rest = name.partition(".")
    return bool(label) and label != "*" and rest == pattern[2:]


# --- Tenant attribution (pure) ---------------------------------------------------------------


@dataclass(frozen=True)
class Attribution:
    """The tenant a recipient's copy of a message belongs to, and why.

    `connector` is the Name of the inbound connector that matched the certificate, or
    None when the message arrived as anonymous internet mail.
    """

    tenant_id: str
    connector: str | None
    step: str


@dataclass(frozen=True)
class RecipientDecision:
    """The reply to one RCPT TO and, when accepted, its attribution."""

    recipient: str
    reply: str
    attribution: Attribution | None

    @property
    def accepted(self) -> bool:
        return self.reply.startswith("250")


def domain_of(address: str) -> str:
    """Return the lower-case domain of an address; '' for the null sender."""
    return address.rpartition("@")[2].strip().lower().rstrip(".") if "@" in address else ""


def _is_on_premises(connector: Mapping[str, Any]) -> bool:
    enabled = connector.get("Enabled", True)
    if isinstance(enabled, str):
        enabled = enabled.strip().lower() in ("true", "1", "$true")
    return bool(enabled) and normalise_connector_type(connector.get("ConnectorType")) == "OnPremises"


def matching_connectors(view: TenantMailView, certificate: PeerCertificate | None) -> list[Mapping[str, Any]]:
    """Return the tenant's enabled OnPremises connectors whose certificate name matches `certificate`."""
    if certificate is None:
        return []
    return [
        connector
        for connector in view.inbound_connectors
        if _is_on_premises(connector)
        and any(certificate_name_matches(connector.get("TlsSenderCertificateName"), name) for name in certificate.names)
    ]


def _sender_domain_allowed(connector: Mapping[str, Any], domain: str) -> bool:
    values = connector.get("SenderDomains") or ["*"]
    if isinstance(values, str):
        values = [values]
    for value in values:
        allowed = normalise_sender_domain(str(value))
        if allowed == "*" or allowed == domain or certificate_name_matches(allowed, domain):
            return True
    return False


def _tenant_owning(views: Iterable[TenantMailView], domain: str) -> TenantMailView | None:
    for view in views:
        if domain and domain in view.accepted_domains:
            return view
    return None


def attribute_sender(
    views: list[TenantMailView], certificate: PeerCertificate | None, mail_from: str
) -> Attribution | None:
    """Attribute a message by the certificate (step 1) or the MAIL FROM domain (step 2).

    Returns None when neither step finds a tenant; then each recipient is
    attributed on its own (step 3).
    """
    if certificate is not None:
        for name in certificate.names:
            view = _tenant_owning(views, name)
            if view is None:
                continue
            for connector in matching_connectors(view, certificate):
                if certificate_name_matches(connector.get("TlsSenderCertificateName"), name):
                    return Attribution(view.tenant_id, str(connector.get("Name")), STEP_CERTIFICATE)

    sender_domain = domain_of(mail_from)
    view = _tenant_owning(views, sender_domain)
    if view is not None:
        for connector in matching_connectors(view, certificate):
            if _sender_domain_allowed(connector, sender_domain):
                return Attribution(view.tenant_id, str(connector.get("Name")), STEP_MAIL_FROM)
    return None


def decide_recipient(
    views: list[TenantMailView],
    certificate: PeerCertificate | None,
    sender: Attribution | None,
    recipient: str,
) -> RecipientDecision:
    """Accept or reject one recipient, given the sender's attribution from `attribute_sender`."""
    if sender is not None:
        return RecipientDecision(recipient, "250 2.1.5 Recipient OK", sender)

    view = _tenant_owning(views, domain_of(recipient))
    if view is None:
        return RecipientDecision(recipient, RELAY_ACCESS_DENIED, None)

    connectors = matching_connectors(view, certificate)
    connector = str(connectors[0].get("Name")) if connectors else None
    return RecipientDecision(recipient, "250 2.1.5 Recipient OK", Attribution(view.tenant_id, connector, STEP_RCPT_TO))


# --- Records for the inspection API ----------------------------------------------------------


@dataclass
class ReceivedMessage:
    """A message the front door accepted, with each recipient's attribution."""

    id: str
    received_at: datetime
    peer: str
    helo: str | None
    tls: bool
    certificate: PeerCertificate | None
    mail_from: str
    recipients: list[RecipientDecision]
    message_id: str | None
    subject: str | None
    size: int
    content: bytes = field(repr=False)

    @property
    def tenant_id(self) -> str | None:
        """The tenant of the first recipient, as `X-EOPTenantAttributedMessage` names it."""
        first = self.recipients[0].attribution if self.recipients else None
        return first.tenant_id if first else None

    def to_json(self) -> dict[str, Any]:
        first = self.recipients[0].attribution if self.recipients else None
        return {
            "id": self.id,
            "received_at": self.received_at.isoformat(),
            "peer": self.peer,
            "helo": self.helo,
            "tls": self.tls,
            "certificate": self.certificate.summary() if self.certificate else None,
            "mail_from": self.mail_from,
            "recipients": [_recipient_json(decision) for decision in self.recipients],
            "tenant_id": self.tenant_id,
            "connector": first.connector if first else None,
            "step": first.step if first else None,
            "message_id": self.message_id,
            "subject": self.subject,
            "size": self.size,
        }


def _recipient_json(decision: RecipientDecision) -> dict[str, Any]:
    attribution = decision.attribution
    return {
        "address": decision.recipient,
        "reply": decision.reply,
        "tenant_id": attribution.tenant_id if attribution else None,
        "connector": attribution.connector if attribution else None,
        "step": attribution.step if attribution else None,
    }


@dataclass(frozen=True)
class Decision:
    """One decision of the front door: a failed TLS handshake, or its reply to MAIL, RCPT or the end of DATA."""

    at: datetime
    stage: str
    reply: str
    peer: str
    mail_from: str | None
    recipient: str | None = None
    tenant_id: str | None = None
    connector: str | None = None
    step: str | None = None
    certificate_names: tuple[str, ...] = ()
    message_id: str | None = None
    reason: str | None = None  # why a TLS handshake failed (stage "tls", which has no reply)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "stage": self.stage,
            "code": int(self.reply[:3]) if self.reply[:3].isdigit() else None,
            "reply": self.reply,
            "reason": self.reason,
            "peer": self.peer,
            "mail_from": self.mail_from,
            "recipient": self.recipient,
            "tenant_id": self.tenant_id,
            "connector": self.connector,
            "step": self.step,
            "certificate_names": list(self.certificate_names),
            "message_id": self.message_id,
        }


# --- The SMTP server -------------------------------------------------------------------------


class _FrontDoorSession(Session):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.certificate: PeerCertificate | None = None


class _FrontDoorEnvelope(Envelope):
    def __init__(self) -> None:
        super().__init__()
        self.sender_attribution: Attribution | None = None
        self.decisions: list[RecipientDecision] = []


def handshake_failure_reason(error: BaseException | None) -> str:
    """Describe why a STARTTLS handshake with a sending server failed."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"client certificate failed verification: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        reason = error.reason or ""
        if "_ALERT_" in reason:
            return f"the client ended the handshake with TLS alert {reason.split('_ALERT_', 1)[1].lower()}"
        return reason.lower().replace("_", " ") or str(error)
    if isinstance(error, (ConnectionError, EOFError)):
        return "the client closed the connection during the handshake"
    return "unknown reason" if error is None else f"{error.__class__.__name__}: {error}"


class _HandshakeLog:
    """Log failed handshakes as one WARNING line per peer address and minute, counting the rest."""

    INTERVAL = 60.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, int]] = {}  # address -> (last logged, failures not logged since)
        self.total = 0

    def failed(self, peer: str, address: str, reason: str) -> None:
        now = time.monotonic()
        with self._lock:
            self.total += 1
            last_logged, suppressed = self._seen.get(address, (None, 0))
            if last_logged is not None and now - last_logged < self.INTERVAL:
                self._seen[address] = (last_logged, suppressed + 1)
                return
            self._seen[address] = (now, 0)
        logger.warning("front door: TLS handshake failed peer=%s reason=%s suppressed=%d", peer, reason, suppressed)


class _FrontDoorSMTP(SMTP):
    """aiosmtpd's server with a session that carries the certificate and an envelope that
    carries the attribution."""

    def _create_session(self) -> Session:
        return _FrontDoorSession(self.loop)

    def _create_envelope(self) -> Envelope:
        return _FrontDoorEnvelope()

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):
            # Recorded and logged in one line, in place of aiosmtpd's two tracebacks per connection.
            # aiosmtpd closes the connection and sends no reply after a failed handshake.
            assert self.session is not None
            self.event_handler.handshake_failed(self.session, error.__cause__)
            return "421 4.7.0 TLS handshake failed"
        return await super().handle_exception(error)


def _null_sender_as_empty(address: str) -> str:
    """Return '' for the null reverse-path, which aiosmtpd passes on as ``<>``."""
    return "" if address.strip() in ("", "<>") else address


def _peer_text(session: Session) -> str:
    peer = session.peer
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


_HEADER_PARSER = BytesHeaderParser(policy=compat32)


class _Handler:
    """aiosmtpd hooks that apply `attribute_sender` and `decide_recipient`."""

    def __init__(self, door: FrontDoor) -> None:
        self._door = door

    def handshake_failed(self, session: Session, error: BaseException | None) -> None:
        """Record a failed STARTTLS handshake as a decision of stage "tls", and log it rate-limited."""
        peer = session.peer
        address = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
        reason = handshake_failure_reason(error)
        self._door._record_decision(Decision(self._door.clock.now(), "tls", "", _peer_text(session), None, reason=reason))
        self._door._handshakes.failed(_peer_text(session), address, reason)

    def handle_STARTTLS(self, server: SMTP, session: _FrontDoorSession, envelope: Envelope) -> bool:
        ssl_object = (session.ssl or {}).get("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            session.certificate = parse_peer_certificate(der)
            logger.debug("front door: certificate presented peer=%s names=%s", _peer_text(session), session.certificate.names)
        return True

    async def handle_MAIL(
        self, server: SMTP, session: _FrontDoorSession, envelope: _FrontDoorEnvelope, address: str, options: list[str]
    ) -> str:
        now = self._door.clock.now()
        mail_from = _null_sender_as_empty(address)
        certificate = session.certificate
        if certificate is not None and certificate.is_expired(now):
            self._door._record_decision(
                Decision(now, "mail", CERTIFICATE_EXPIRED, _peer_text(session), mail_from, certificate_names=certificate.names)
            )
            return CERTIFICATE_EXPIRED

        views = self._door.views(now)
        attribution = attribute_sender(views, certificate, mail_from)
        envelope.sender_attribution = attribution
        # aiosmtpd needs a true mail_from to accept RCPT, so the null sender stays "<>" here.
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        reply = "250 2.1.0 Sender OK"
        self._door._record_decision(
            Decision(
                now,
                "mail",
                reply,
                _peer_text(session),
                mail_from,
                tenant_id=attribution.tenant_id if attribution else None,
                connector=attribution.connector if attribution else None,
                step=attribution.step if attribution else None,
                certificate_names=certificate.names if certificate else (),
            )
        )
        return reply

    async def handle_RCPT(
        self, server: SMTP, session: _FrontDoorSession, envelope: _FrontDoorEnvelope, address: str, options: list[str]
    ) -> str:
        now = self._door.clock.now()
        decision = decide_recipient(self._door.views(now), session.certificate, envelope.sender_attribution, address)
        attribution = decision.attribution
        self._door._record_decision(
            Decision(
                now,
                "rcpt",
                decision.reply,
                _peer_text(session),
                _null_sender_as_empty(envelope.mail_from or ""),
                recipient=address,
                tenant_id=attribution.tenant_id if attribution else None,
                connector=attribution.connector if attribution else None,
                step=attribution.step if attribution else None,
                certificate_names=session.certificate.names if session.certificate else (),
            )
        )
        if decision.accepted:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
            envelope.decisions.append(decision)
        return decision.reply

    async def handle_DATA(self, server: SMTP, session: _FrontDoorSession, envelope: _FrontDoorEnvelope) -> str:
        now = self._door.clock.now()
        content = envelope.original_content or b""
        headers = _HEADER_PARSER.parsebytes(content)
        message = ReceivedMessage(
            id=str(uuid.uuid4()),
            received_at=now,
            peer=_peer_text(session),
            helo=session.host_name,
            tls=session.ssl is not None,
            certificate=session.certificate,
            mail_from=_null_sender_as_empty(envelope.mail_from or ""),
            recipients=list(envelope.decisions),
            message_id=_header_text(headers.get("Message-ID")),
            subject=_decoded_subject(content),
            size=len(content),
            content=_stamp(content, envelope.decisions),
        )
        reply = f"250 2.6.0 <{message.id}> Queued mail for delivery"
        self._door._record_message(message, reply)
        return reply


def _header_text(value: Any) -> str | None:
    return None if value is None else str(value).strip()


_DECODING_PARSER = BytesHeaderParser(policy=default_policy)


def _decoded_subject(content: bytes) -> str | None:
    """Return the Subject as text: RFC 2047 encoded words decoded, and raw UTF-8 (RFC 6532) read as UTF-8."""
    try:
        value = _DECODING_PARSER.parsebytes(content).get("Subject")
    except (ValueError, TypeError, IndexError):  # a header the decoding parser cannot read
        value = _HEADER_PARSER.parsebytes(content).get("Subject")
    return _header_text(value)


def _stamp(content: bytes, decisions: list[RecipientDecision]) -> bytes:
    """Prepend the header Exchange adds once a message is attributed: ``<tenant id>:0``."""
    first = decisions[0].attribution if decisions else None
    if first is None:
        return content
    return f"{ATTRIBUTION_HEADER}: {first.tenant_id}:0\r\n".encode("ascii") + content


class FrontDoor:
    """The SMTP listener of the simulator, run on its own event loop thread.

    `view_provider(now)` returns the tenants' mail configuration in effect at `now`
    (`TenantMailView` or any shape `as_mail_view` accepts). `trusted_cas` are PEM
    files of the CAs whose client certificates the front door accepts; `trust` adds
    more while it runs.
    """

    def __init__(
        self,
        view_provider: ViewProvider,
        *,
        certificate: Path,
        key: Path,
        trusted_cas: Iterable[Path] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        hostname: str = "mail.protection.outlook.com",
        data_size_limit: int = DEFAULT_DATA_SIZE_LIMIT,
        max_records: int = DEFAULT_MAX_RECORDS,
        client_ca_dir: Path | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        self._client_ca_dir = Path(client_ca_dir) if client_ca_dir else None
        self._view_provider = view_provider
        self._host = host
        self._requested_port = port
        self._hostname = hostname
        self._data_size_limit = data_size_limit
        self._tls_context = self._server_context(Path(certificate), Path(key))
        self._trusted: list[Path] = []
        for path in trusted_cas:
            self.trust(path)

        self._lock = threading.Lock()
        self._handshakes = _HandshakeLog()
        self._messages: deque[ReceivedMessage] = deque(maxlen=max_records)
        self._decisions: deque[Decision] = deque(maxlen=max_records)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    @staticmethod
    def _server_context(certificate: Path, key: Path) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certificate, key)
        # CERT_OPTIONAL makes the server send a CertificateRequest; a presented
        # certificate must still chain to a trusted CA or the handshake fails.
        context.verify_mode = ssl.CERT_OPTIONAL
        context.verify_flags |= _X509_V_FLAG_NO_CHECK_TIME
        return context

    def trust(self, ca_path: Path) -> None:
        """Accept client certificates issued by the CA in `ca_path` (PEM), from the next handshake on."""
        self._tls_context.load_verify_locations(cafile=str(ca_path))
        self._trusted.append(Path(ca_path))
        logger.info("front door: trusting client certificates of ca=%s", ca_path)

    def trust_pem(self, pem: bytes) -> Path:
        """Save a PEM CA certificate in the client CA folder and trust it; return its path.

        Raises ValueError when `pem` is not a PEM certificate.
        """
        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError as error:
            # cryptography's own text points to its FAQ, which does not help the caller.
            raise ValueError(
                "invalid CA certificate: expected one PEM certificate (-----BEGIN CERTIFICATE-----); "
                "send the CA's PEM file as the request body"
            ) from error
        folder = self._client_ca_dir
        if folder is None:
            raise ValueError("this front door has no client CA folder")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{certificate.fingerprint(hashes.SHA256()).hex()[:16]}.pem"
        path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        self.trust(path)
        return path

    @property
    def handshake_failures(self) -> int:
        """Failed STARTTLS handshakes since start."""
        return self._handshakes.total

    @property
    def trusted_cas(self) -> list[Path]:
        return list(self._trusted)

    def views(self, now: datetime) -> list[TenantMailView]:
        """Return the tenants' mail configuration in effect at `now`."""
        return [as_mail_view(item) for item in self._view_provider(now)]

    # -- lifecycle

    def start(self) -> None:
        """Start listening; `port` is set when this returns."""
        if self._thread is not None:
            return
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(ready, failure), name="front-door", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        logger.info("front door: listening host=%s port=%s", self._host, self.port)

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            self._server = loop.run_until_complete(
                loop.create_server(self._make_protocol, host=self._host, port=self._requested_port)
            )
        except OSError as error:
            failure.append(error)
            ready.set()
            loop.close()
            return

        self.port = self._server.sockets[0].getsockname()[1]
        ready.set()
        loop.run_forever()

        self._server.close()
        loop.run_until_complete(self._server.wait_closed())
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()

    def _make_protocol(self) -> SMTP:
        return _FrontDoorSMTP(
            _Handler(self),
            hostname=self._hostname,
            ident="Microsoft ESMTP MAIL Service (tenanttls simulator)",
            tls_context=self._tls_context,
            data_size_limit=self._data_size_limit,
            enable_SMTPUTF8=True,
            decode_data=False,
            loop=self._loop,
        )

    def stop(self) -> None:
        """Stop listening and close open sessions."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None
        self._loop = None
        logger.info("front door: stopped port=%s", self.port)

    def __enter__(self) -> FrontDoor:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- records

    def _record_decision(self, decision: Decision) -> None:
        with self._lock:
            self._decisions.append(decision)
        if decision.reply and not decision.reply.startswith("2"):
            logger.info(
                "front door: %s rejected peer=%s mail_from=%s recipient=%s reply=%s",
                decision.stage, decision.peer, decision.mail_from, decision.recipient, decision.reply,
            )

    def _record_message(self, message: ReceivedMessage, reply: str) -> None:
        first = message.recipients[0].attribution if message.recipients else None
        decision = Decision(
            message.received_at,
            "data",
            reply,
            message.peer,
            message.mail_from,
            tenant_id=first.tenant_id if first else None,
            connector=first.connector if first else None,
            step=first.step if first else None,
            certificate_names=message.certificate.names if message.certificate else (),
            message_id=message.message_id,
        )
        with self._lock:
            self._messages.append(message)
            self._decisions.append(decision)
        logger.info(
            "front door: accepted tenant=%s id=%s message_id=%s recipients=%d",
            message.tenant_id, message.id, message.message_id, len(message.recipients),
        )

    def messages(self, tenant_id: str | None = None) -> list[ReceivedMessage]:
        """Return the accepted messages, oldest first, optionally only those of one tenant."""
        with self._lock:
            messages = list(self._messages)
        if tenant_id is None:
            return messages
        return [m for m in messages if any(d.attribution and d.attribution.tenant_id == tenant_id for d in m.recipients)]

    def message(self, message_id: str) -> ReceivedMessage | None:
        """Return the accepted message with the front door's id (the one in the 250 reply to DATA)."""
        with self._lock:
            return next((message for message in self._messages if message.id == message_id), None)

    def attributed_tenant(self, message_id: str) -> str | None:
        """Return the tenant the message with the front door's id was attributed to, or None."""
        message = self.message(message_id)
        return message.tenant_id if message else None

    def decisions(self) -> list[Decision]:
        """Return every decision (failed TLS handshakes, MAIL, RCPT and DATA replies), oldest first."""
        with self._lock:
            return list(self._decisions)

    def clear(self) -> None:
        """Forget the recorded messages and decisions."""
        with self._lock:
            self._messages.clear()
            self._decisions.clear()

    def resolve_tenant(self, reference: str) -> str | None:
        """Return the tenant id that `reference` names (a tenant id, or an accepted domain in effect now), or None."""
        text = reference.strip().lower()
        if is_guid(text):
            return text
        for view in self.views(self.clock.now()):
            if text.rstrip(".") in view.accepted_domains:
                return view.tenant_id
        return None

    def inspection(self, tenant_id: str | None = None) -> dict[str, Any]:
        """Return the records as the inspection API serves them."""
        decisions = [d.to_json() for d in self.decisions() if tenant_id is None or d.tenant_id == tenant_id]
        return {
            "messages": [m.to_json() for m in self.messages(tenant_id)],
            "decisions": decisions,
        }


def _error(status: int, message: str):
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status)


def inspection_routes(get_front_door: Callable[[], FrontDoor | None]) -> list:
    """Return the Starlette routes of the front door's inspection API.

    - ``GET /_simulator/messages[?tenant=ID]`` returns ``{"messages": [...], "decisions": [...]}``.
      ID is a tenant id or one of its accepted domains, and anything else gets 400.
    - ``DELETE /_simulator/messages`` clears both lists.
    - ``POST /_simulator/smtp/trusted-cas`` with a PEM body trusts that CA's client
      certificates from the next handshake on.

    Each returns 404 while the front door is not running.
    """
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    not_running = "the SMTP front door is not running; start the simulator with an SMTP port"

    async def list_messages(request: Request):
        door = get_front_door()
        if door is None:
            return _error(404, not_running)

        reference = request.query_params.get("tenant")
        tenant_id = None
        if reference is not None:
            tenant_id = door.resolve_tenant(reference)
            if tenant_id is None:
                return _error(400, f"invalid tenant {reference[:100]!r}: expected a tenant id (GUID) or an accepted domain "
                                   "of a simulated tenant; list tenants with GET /_simulator/tenants")
        return JSONResponse(door.inspection(tenant_id))

    async def clear_messages(request: Request):
        door = get_front_door()
        if door is None:
            return _error(404, not_running)
        door.clear()
        return JSONResponse({"cleared": True})

    async def trust_ca(request: Request):
        door = get_front_door()
        if door is None:
            return _error(404, not_running)
        body = await request.body()
        try:
            path = door.trust_pem(body)
        except ValueError as error:
            return _error(400, str(error))
        except ssl.SSLError as error:
            return _error(400, f"failed to load the CA certificate into TLS: {error.reason or error}; send the CA's PEM file")
        return JSONResponse({"trusted": str(path)})

    return [
        Route("/_simulator/messages", list_messages, methods=["GET"]),
        Route("/_simulator/messages", clear_messages, methods=["DELETE"]),
        Route("/_simulator/smtp/trusted-cas", trust_ca, methods=["POST"]),
    ]


class SmtpFrontDoorService:
    """The front door as a simulator service (`Simulator.add_service`).

    On start it listens on `port` (0: a free one, then written to ``simulator.smtp_port``)
    with the simulator's server certificate (``DATA/tls/server.pem``), reads the tenants
    from ``simulator.state.mail_view`` at the simulator's clock, and trusts the client
    CAs in ``DATA/tls/client-cas/*.pem`` plus `trusted_cas`.
    """

    def __init__(self, port: int = 0, *, trusted_cas: Iterable[Path] = ()) -> None:
        self.port = port
        self.trusted_cas = [Path(path) for path in trusted_cas]
        self.door: FrontDoor | None = None
        self._services: Any = None  # the simulator's `Services`, which carry the address for /_simulator/health
        self.routes = inspection_routes(lambda: self.door)

    def start(self, simulator: Any) -> None:
        tls_dir = Path(simulator.data_dir) / "tls"
        client_cas = tls_dir / "client-cas"
        client_cas.mkdir(parents=True, exist_ok=True)

        def views(now: datetime) -> list[Any]:
            state = simulator.state
            return state.mail_view(now) if state is not None else []

        self.door = FrontDoor(
            views,
            certificate=tls_dir / "server.pem",
            key=tls_dir / "server.key",
            trusted_cas=[*sorted(client_cas.glob("*.pem")), *self.trusted_cas],
            host=simulator.host,
            port=self.port,
            clock=simulator.clock,
            client_ca_dir=client_cas,
        )
        self.door.start()
        simulator.smtp_port = self.door.port
        self._services = getattr(simulator, "services", None)
        if self._services is not None:
            self._services.smtp_address = self.address(simulator.host)

    def address(self, host: str) -> str:
        """Return ``host:port`` of the running front door (``[host]:port`` for IPv6)."""
        shown = f"[{host}]" if ":" in host else host
        return f"{shown}:{self.door.port if self.door else self.port}"

    def stop(self) -> None:
        if self._services is not None:
            self._services.smtp_address = None
            self._services = None
        if self.door is not None:
            self.door.stop()
            self.door = None
