"""Rendering an `AuditReport` as text for people or as JSON for programs."""

from __future__ import annotations

import json
import re
from typing import Any

from tenanttls.audit.findings import AuditReport


def report_to_dict(report: AuditReport) -> dict[str, Any]:
    """Return the report as plain JSON types; the keys are the `--json` output's contract."""
    return {
        "tenant": report.tenant,
        "complete": report.complete,
        "connectors_checked": report.connectors_checked,
        "files": list(report.files),
        "provider_connector": report.provider_connector,
        "matched_by": report.matched_by,
        "null_sender_attributed": report.null_sender_attributed,
        "worst_severity": report.worst.label if report.worst is not None else None,
        "findings": [
            {
                "code": f.code,
                "severity": f.severity.label,
                "subject": f.subject,
                "explanation": f.explanation,
                "fix": f.fix,
            }
            for f in report.findings
        ],
        "notes": list(report.notes),
        "unknown_fields": list(report.unknown_fields),
    }


def report_to_json(report: AuditReport) -> str:
    """Return the report as indented JSON."""
    return json.dumps(report_to_dict(report), indent=2, ensure_ascii=False)


# Characters that would break the report's lines apart: C0 and C1 controls and the
# Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _printable(text: str) -> str:
    """Return `text` with control characters escaped (``\\n``, ``\\x07``), so a value stays on its line."""
    return _CONTROL.sub(lambda match: _ESCAPES.get(match.group(), f"\\u{ord(match.group()):04x}"), text)


def report_to_text(report: AuditReport) -> str:
    """Return the report as text: a summary, then one block per finding, worst first.

    Values from the exports (names, comments) can contain line breaks; they are escaped.
    """
    not_checked = "not checked (no connector export)"
    if report.connectors_checked:
        provider = (report.provider_connector or "not found") + (f" (matches on {report.matched_by})" if report.matched_by else "")
        attributed = {True: "yes", False: "no", None: "unknown (no Get-AcceptedDomain export)"}[report.null_sender_attributed]
    else:
        provider = attributed = not_checked
    lines = [
        f"Tenant: {report.tenant or 'unknown (the exports do not name it)'}",
        f"Files: {', '.join(str(f['path']) for f in report.files)}",
        f"Provider's connector: {provider}",
        f"Null-sender mail attributed: {attributed}",
    ]
    if not report.complete:
        lines.append("Report incomplete: some checks did not run (see the findings about missing exports).")
    lines.append("")

    for finding in report.findings:
        lines.append(f"[{finding.severity.label}] {finding.code}: {finding.subject}")
        lines.append(f"  {finding.explanation}")
        if finding.fix:
            lines.append(f"  Fix: {finding.fix}")
        lines.append("")

    for note in report.notes:
        lines.append(f"Note: {note}")
    for unknown in report.unknown_fields:
        lines.append(f"Unknown field ignored: {unknown}")
    return "\n".join(_printable(line) for line in lines).rstrip() + "\n"
