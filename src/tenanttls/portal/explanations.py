"""Plain-language answers to the questions customers' admins ask about the upgrade.

The pages show each answer where the question comes up (the plan, the timeline, the
"Incomplete setup" note), and the JSON API serves the same text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Explanation:
    """One question and its answer in paragraphs."""

    key: str
    question: str
    paragraphs: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {"key": self.key, "question": self.question, "answer": list(self.paragraphs)}


def describe_duration(delta: timedelta) -> str:
    """Return a duration in words, such as "24 hours", "1 hour 30 minutes" or "5 seconds"."""
    total = max(0, int(delta.total_seconds()))
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{count} {unit}{'s' if count != 1 else ''}" for count, unit in ((hours, "hour"), (minutes, "minute"), (seconds, "second")) if count]
    return " ".join(parts) or "0 seconds"


def explanations(
    *, connector_name: str, legacy_certificate_name: str, unique_name: str | None, grace: timedelta
) -> dict[str, Explanation]:
    """Return the explanations, filled in with the tenant's names, by key."""
    # The name is allocated when the upgrade starts; before that the text speaks of it generally.
    named = f" ({unique_name})" if unique_name else ""
    backup = f"{connector_name}-BACKUP"

    items = [
        Explanation(
            "why",
            "Why is this change needed?",
            (
                "Our servers deliver your outgoing mail to Microsoft 365 through an inbound connector. "
                "Microsoft 365 now decides which organisation such mail belongs to by the name on the "
                "certificate our servers present, before it looks at the sender's address.",
                f"Today every customer shares one certificate, {legacy_certificate_name}. It names no single "
                "organisation, so Microsoft 365 cannot tell from it that the mail is yours. Microsoft has "
                "announced that connectors set up this way must change, and that it may move tenants to the "
                "new rule without notice (Microsoft 365 Message Center, MC1226222).",
                f"The upgrade gives your tenant its own certificate name{named}, adds it to your tenant as an "
                "accepted domain, and creates a connector that accepts our mail by that certificate.",
            ),
        ),
        Explanation(
            "downtime",
            "Will mail stop during the upgrade?",
            (
                "No. Your current connector stays active: it is renamed "
                f"{backup} and keeps accepting our mail with the shared certificate.",
                f"The new connector {connector_name} is added next to it. The two connectors match different "
                "certificate names, so they work side by side.",
                f"Our servers keep presenting the shared certificate for a grace period of {describe_duration(grace)} after "
                "the new connector is created, so that the change has reached all of Microsoft's servers before "
                "our servers switch to your own certificate.",
            ),
        ),
        Explanation(
            "incomplete_setup",
            "Why does the new domain show \u201cIncomplete setup\u201d in the Microsoft 365 admin center? Can I remove it?",
            (
                "The admin center checks every domain for the DNS records that mail and other services use "
                f"(MX, SPF, autodiscover). Your tenant's unique certificate name{named} has none of them on "
                "purpose: no mail is sent to it and nobody signs in with it. It is not used for routing; it only "
                "lets Microsoft 365 match our certificate to your tenant. \u201cIncomplete setup\u201d is "
                "therefore expected, and you do not need to add any records.",
                "Do not remove the domain. Without it Microsoft 365 can no longer attribute our mail to your "
                "tenant: automatic replies and bounce messages to outside recipients are rejected with "
                "\u201c550 5.7.64 TenantAttribution; Relay Access Denied\u201d, and other mail falls back to "
                "matching by address.",
            ),
        ),
        Explanation(
            "automatic_replies",
            "What happens to automatic replies (out of office)?",
            (
                "Automatic replies, bounce messages (NDRs) and other system messages are sent with an empty "
                "sender address. Microsoft 365 then cannot use the sender's domain to find your tenant, and a "
                "shared certificate gives it nothing else, so such messages to outside recipients can be "
                "rejected (550 5.7.64 TenantAttribution).",
                "After the upgrade the certificate name is an accepted domain of your tenant, so Microsoft 365 "
                "attributes these messages to your tenant by the certificate and delivers them.",
            ),
        ),
        Explanation(
            "manual",
            "What does support do if I request the manual upgrade?",
            (
                "We record your request and stop the automatic upgrade for your tenant. A member of our support "
                "team contacts you at the address you give to agree a time.",
                f"Together with your administrator they make the same changes: add your tenant's unique "
                f"certificate name{named} as an accepted domain and verify it, rename the current connector to "
                f"{backup}, and create the new connector. Our servers switch to your certificate after the same "
                "grace period, so mail keeps flowing.",
            ),
        ),
    ]
    return {item.key: item for item in items}
