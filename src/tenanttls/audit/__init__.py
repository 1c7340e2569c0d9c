"""Configuration audit of a tenant from exports, and drift of upgraded tenants.

`read_export_set` reads the files that ``Get-InboundConnector`` and
``Get-AcceptedDomain`` produce (ConvertTo-Json or Format-List, in UTF-8, UTF-16 or
UTF-32); `audit_exports` returns an `AuditReport` of findings, each with a
severity, an explanation and the fix.
"""

from __future__ import annotations

from tenanttls.audit.dates import DateOrder
from tenanttls.audit.exports import Export, ExportKind, ExportRecord, read_export
from tenanttls.audit.exportset import ExportSet, read_export_set
from tenanttls.audit.findings import AuditReport, Finding, ProviderProfile, Severity, audit_exports
from tenanttls.audit.report import report_to_dict, report_to_json, report_to_text

__all__ = [
    "AuditReport",
    "DateOrder",
    "Export",
    "ExportKind",
    "ExportRecord",
    "ExportSet",
    "Finding",
    "ProviderProfile",
    "Severity",
    "audit_exports",
    "read_export",
    "read_export_set",
    "report_to_dict",
    "report_to_json",
    "report_to_text",
]
