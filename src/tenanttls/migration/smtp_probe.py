"""`SmtpProber`: the verify step's probe, as real SMTP with the tenant's client certificate.

It sends two messages to an address outside the tenant, presenting the tenant's
unique certificate after STARTTLS: one with a normal MAIL FROM and one with the
null sender (``MAIL FROM:<>``), which only certificate-based attribution lets
through. Each must get a 250 reply to DATA, and, when an `attribution` check is
given, be attributed to the tenant.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
import tempfile
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import make_msgid
from pathlib import Path
from typing import Any, Callable, Protocol

from tenanttls.certificates.keystore import write_private_file
from tenanttls.migration.context import CountingApi, ProbeResult

logger = logging.getLogger(__name__)

PROBE_RECIPIENT = "probe@tenanttls-probe.invalid"
_QUEUED_ID = re.compile(r"<([^>]+)>")


class KeyPairSource(Protocol):
    """The part of `CertificateService` the prober uses."""

    def load_key_pair(self, certificate_id: int) -> tuple[str, str]:
        """Return the chain and the private key (PEM) of a stored certificate."""
        ...


class SmtpProber:
    """Sends probe messages to `host`:`port` presenting the tenant's certificate.

    `server_ca` is the CA bundle that signs the server's certificate (None: the
    system store). `attribution` is called with the tenant id and the queued id
    from each DATA reply and returns the tenant the message was attributed to.
    NOTE: against Exchange Online the attribution check needs message trace, which
    tenanttls does not query yet; the 250 replies are then the only evidence.
    """

    def __init__(
        self,
        certificates: KeyPairSource,
        host: str,
        port: int,
        *,
        server_ca: str | Path | None = None,
        recipient: str = PROBE_RECIPIENT,
        attribution: Callable[[str, str], str | None] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.certificates = certificates
        self.host = host
        self.port = port
        self.server_ca = str(server_ca) if server_ca else None
        self.recipient = recipient
        self.attribution = attribution
        self.timeout = timeout

    def probe(self, api: CountingApi, tenant_id: str, name: str, certificate_id: int | None) -> ProbeResult:
        """Send the normal and the null-sender probe; accepted only when both pass."""
        if certificate_id is None:
            return ProbeResult(False, f"tenant {tenant_id} has no certificate assigned to the relay")

        chain_pem, key_pem = self.certificates.load_key_pair(certificate_id)
        with tempfile.TemporaryDirectory(prefix="tenanttls-probe-") as folder:
            chain_path, key_path = Path(folder) / "chain.pem", Path(folder) / "key.pem"
            chain_path.write_text(chain_pem, encoding="ascii")
            write_private_file(key_path, key_pem.encode("ascii"))
            context = self._client_context(chain_path, key_path)
            messages = [self._send(context, tenant_id, name, sender) for sender in (f"postmaster@{name}", "")]

        failures = [message for message in messages if not message["accepted"]]
        if failures:
            detail = "; ".join(f"MAIL FROM:<{m['sender']}> got {m['reply']}" for m in failures)
            return ProbeResult(False, detail, messages)
        return ProbeResult(True, f"2 probe messages (one with the null sender) accepted and attributed to {tenant_id}", messages)

    def _client_context(self, chain_path: Path, key_path: Path) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.server_ca)
        context.load_cert_chain(chain_path, key_path)
        return context

    def _send(self, context: ssl.SSLContext, tenant_id: str, name: str, sender: str) -> dict[str, Any]:
        message = EmailMessage(policy=SMTP_POLICY)
        message["From"] = f"postmaster@{name}"
        message["To"] = self.recipient
        message["Subject"] = f"tenanttls probe for tenant {tenant_id}"
        message["Message-ID"] = make_msgid(domain=name)
        message.set_content("This message checks that mail presented with the tenant's certificate is accepted.\n")

        record: dict[str, Any] = {"sender": sender, "accepted": False, "reply": "", "attributed_to": None}
        try:
            with smtplib.SMTP(self.host, self.port, local_hostname=name, timeout=self.timeout) as client:
                client.starttls(context=context)
                client.ehlo(name)
                code, reply = client.mail(sender)
                if code == 250:
                    code, reply = client.rcpt(self.recipient)
                if code == 250:
                    code, reply = client.data(message.as_bytes())
        except (smtplib.SMTPException, OSError) as error:
            record["reply"] = f"{type(error).__name__}: {error}"
            return record

        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        record["reply"] = f"{code} {text}"
        record["accepted"] = code == 250
        if record["accepted"] and self.attribution is not None:
            queued = _QUEUED_ID.search(text)
            attributed = self.attribution(tenant_id, queued.group(1)) if queued else None
            record["attributed_to"] = attributed
            record["accepted"] = attributed == tenant_id
            if attributed != tenant_id:
                record["reply"] += f" (attributed to {attributed or 'no tenant'})"
        logger.info("probe sent: tenant=%s sender=<%s> reply=%s", tenant_id, sender, record["reply"])
        return record
