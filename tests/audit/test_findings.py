from __future__ import annotations

import json

import pytest

from tenanttls.audit import Severity, audit_exports, read_export_set, report_to_dict, report_to_text

from tests.audit.conftest import UNIQUE


def _audit(exports_dir, profile, *names):
    exports = read_export_set([exports_dir / name for name in names])
    return audit_exports(exports, profile)


def _codes(report, subject=None):
    return {f.code: f for f in report.findings if subject is None or f.subject == subject}


def test_legacy_tenant(exports_dir, profile):
    report = _audit(exports_dir, profile, "contoso-legacy-connectors.json", "contoso-accepted-domains.json")
    codes = _codes(report, "NorthwindInboundConnector")

    assert report.provider_connector == "NorthwindInboundConnector"
    assert report.matched_by == "certificate"
    assert report.null_sender_attributed is False
    assert codes["shared-wildcard-certificate"].severity is Severity.ERROR
    assert codes["null-sender-not-attributed"].severity is Severity.ERROR
    assert "wildcard" in codes["null-sender-not-attributed"].explanation
    assert report.worst is Severity.ERROR
    assert report.complete is True


def test_other_connector_on_ips(exports_dir, profile):
    report = _audit(exports_dir, profile, "contoso-legacy-connectors.json", "contoso-accepted-domains.json")
    finding = _codes(report, "Contoso Scanner")["matches-on-ips"]

    assert finding.severity is Severity.WARNING
    assert "198.51.100.10" in finding.explanation


def test_upgraded_tenant(exports_dir, profile):
    report = _audit(exports_dir, profile, "contoso-upgraded-connectors.json", "contoso-upgraded-accepted-domains.txt")
    codes = _codes(report)

    assert report.null_sender_attributed is True
    assert report.worst is Severity.INFO
    assert codes["null-sender-attributed"].severity is Severity.INFO
    assert codes["certificate-accepted"].subject == "NorthwindInboundConnector"
    assert codes["backup-connector"].subject == "NorthwindInboundConnector-BACKUP"
    assert UNIQUE in codes["provider-connector"].explanation


def test_provider_on_shared_ips(exports_dir, profile):
    report = _audit(exports_dir, profile, "contoso-ip-connectors.txt", "contoso-accepted-domains.json")
    codes = _codes(report, "NorthwindInboundConnector")

    assert report.matched_by == "ip addresses"
    assert codes["matches-on-shared-ips"].severity is Severity.ERROR
    assert "IP addresses" in codes["null-sender-not-attributed"].explanation


def test_created_disabled(exports_dir, profile):
    report = _audit(exports_dir, profile, "contoso-disabled-connectors.json", "contoso-upgraded-accepted-domains.txt")
    finding = _codes(report, "NorthwindInboundConnector")["connector-created-disabled"]

    assert finding.severity is Severity.ERROR
    assert "created disabled" in finding.explanation
    assert "-Enabled $true" in finding.fix
    assert report.null_sender_attributed is False


def test_shared_certificate_name_between_connectors(exports_dir, profile):
    report = _audit(exports_dir, profile, "contoso-disabled-connectors.json", "contoso-upgraded-accepted-domains.txt")
    finding = _codes(report, "relay.contoso.com")["conflicting-certificate-name"]

    assert finding.severity is Severity.WARNING
    assert "Contoso Archive Relay, Contoso Archive Relay 2" in finding.explanation


def test_certificate_not_accepted(exports_dir, profile):
    report = _audit(exports_dir, profile, "contoso-disabled-connectors.json", "contoso-upgraded-accepted-domains.txt")
    finding = _codes(report, "Contoso Archive Relay")["certificate-not-accepted"]

    assert finding.severity is Severity.WARNING
    assert "5.7.64" in finding.explanation


def test_conflicting_backup(exports_dir, profile):
    report = _audit(exports_dir, profile, "contoso-conflicting-connectors.json", "contoso-accepted-domains.json")
    finding = _codes(report, "NorthwindInboundConnector-BACKUP")["conflicting-backup"]

    assert finding.severity is Severity.ERROR
    assert "rename" in finding.explanation


def test_duplicate_connector_name(exports_dir, profile):
    report = _audit(exports_dir, profile, "contoso-conflicting-connectors.json", "contoso-accepted-domains.json")
    finding = _codes(report)["duplicate-connector-name"]

    assert finding.severity is Severity.ERROR
    assert finding.subject.lower() == "contoso scanner"


def test_wildcard_over_accepted_domain(exports_dir, profile):
    report = _audit(exports_dir, profile, "contoso-conflicting-connectors.json", "contoso-accepted-domains.json")
    codes = _codes(report, "Contoso Branch")

    assert codes["wildcard-base-accepted"].severity is Severity.WARNING
    assert codes["wildcard-certificate"].severity is Severity.WARNING


def test_lower_case_connector_type(exports_dir, profile):
    report = _audit(exports_dir, profile, "contoso-conflicting-connectors.json", "contoso-accepted-domains.json")

    assert "provider-connector-type" not in _codes(report)


def test_partner_provider_connector(exports_dir, profile, tmp_path):
    records = json.loads((exports_dir / "contoso-upgraded-connectors.json").read_text(encoding="utf-8"))
    records[0]["ConnectorType"] = "Partner"
    records[0]["SenderDomains"] = ["smtp:contoso.com;1"]
    path = tmp_path / "partner.json"
    path.write_text(json.dumps(records), encoding="utf-8")

    report = audit_exports(read_export_set([path, exports_dir / "contoso-upgraded-accepted-domains.txt"]), profile)
    codes = _codes(report, "NorthwindInboundConnector")

    assert codes["provider-connector-type"].severity is Severity.ERROR
    assert codes["provider-sender-domains"].severity is Severity.WARNING
    assert "Partner" in codes["null-sender-not-attributed"].explanation


def test_tls_settings_off(exports_dir, profile, tmp_path):
    records = json.loads((exports_dir / "contoso-upgraded-connectors.json").read_text(encoding="utf-8"))
    records[0]["RequireTls"] = False
    records[0]["RestrictDomainsToCertificate"] = False
    path = tmp_path / "tls.json"
    path.write_text(json.dumps(records), encoding="utf-8")

    report = audit_exports(read_export_set([path, exports_dir / "contoso-upgraded-accepted-domains.txt"]), profile)
    codes = _codes(report, "NorthwindInboundConnector")

    assert codes["tls-not-required"].severity is Severity.WARNING
    assert codes["certificate-not-enforced"].severity is Severity.WARNING


def test_half_done_upgrade(exports_dir, profile):
    report = _audit(exports_dir, profile, "contoso-legacy-connectors.json", "contoso-upgraded-accepted-domains.txt")
    finding = _codes(report)["upgrade-incomplete"]

    assert finding.severity is Severity.WARNING
    assert finding.subject == UNIQUE


def test_no_provider_connector(exports_dir, profile, tmp_path):
    records = json.loads((exports_dir / "contoso-legacy-connectors.json").read_text(encoding="utf-8"))
    path = tmp_path / "scanner-only.json"
    path.write_text(json.dumps(records[1:]), encoding="utf-8")

    report = audit_exports(read_export_set([path, exports_dir / "contoso-accepted-domains.json"]), profile)

    assert report.provider_connector is None
    assert _codes(report)["provider-connector-missing"].severity is Severity.ERROR
    assert report.null_sender_attributed is False


def test_connectors_only(exports_dir, profile):
    report = _audit(exports_dir, profile, "contoso-upgraded-connectors.json")
    codes = _codes(report)

    assert report.complete is False
    assert report.null_sender_attributed is None
    assert codes["accepted-domains-not-given"].severity is Severity.WARNING
    assert codes["null-sender-unknown"].severity is Severity.WARNING


def test_accepted_domains_only(exports_dir, profile):
    report = _audit(exports_dir, profile, "contoso-accepted-domains.json")

    assert report.complete is False
    assert "connectors-not-given" in _codes(report)
    assert "provider-connector-missing" not in _codes(report)


def test_findings_sorted_worst_first(exports_dir, profile):
    report = _audit(exports_dir, profile, "contoso-conflicting-connectors.json", "contoso-accepted-domains.json")
    severities = [f.severity for f in report.findings]

    assert severities == sorted(severities, reverse=True)


@pytest.mark.parametrize(
    "names",
    [
        ("contoso-legacy-connectors.json", "contoso-accepted-domains.json"),
        ("contoso-conflicting-connectors.json", "contoso-accepted-domains.json"),
        ("contoso-disabled-connectors.json", "contoso-upgraded-accepted-domains.txt"),
        ("contoso-ip-connectors.txt", "contoso-accepted-domains.json"),
    ],
)
def test_every_error_has_a_fix(exports_dir, profile, names):
    report = _audit(exports_dir, profile, *names)

    for finding in report.findings:
        if finding.severity >= Severity.WARNING:
            assert finding.fix, finding.code
        assert finding.explanation.endswith("."), finding.code


def test_json_report(exports_dir, profile):
    report = _audit(exports_dir, profile, "contoso-legacy-connectors.json", "contoso-accepted-domains.json")
    document = report_to_dict(report)

    assert document["tenant"] == "contoso.onmicrosoft.com"
    assert document["worst_severity"] == "error"
    assert document["files"][0]["cmdlet"] == "Get-InboundConnector"
    assert {"code", "severity", "subject", "explanation", "fix"} == set(document["findings"][0])
    json.dumps(document)


def test_text_report(exports_dir, profile):
    report = _audit(exports_dir, profile, "contoso-upgraded-connectors.json")
    text = report_to_text(report)

    assert "Report incomplete" in text
    assert "Null-sender mail attributed: unknown" in text
    assert "[warning] accepted-domains-not-given" in text


def _null_sender_fix(report):
    return _codes(report)["null-sender-not-attributed"].fix


@pytest.mark.parametrize(
    ("fields", "domains", "expected", "unexpected"),
    [
        ({}, "contoso-accepted-domains.json", "already uses the unique name", "Upgrade the tenant"),
        ({"Enabled": False}, "contoso-upgraded-accepted-domains.txt", "-Enabled $true", "Upgrade the tenant"),
        ({"ConnectorType": "Partner"}, "contoso-upgraded-accepted-domains.txt", "-ConnectorType OnPremises", "Upgrade the tenant"),
    ],
)
def test_null_sender_fix_fits_cause(exports_dir, profile, tmp_path, fields, domains, expected, unexpected):
    records = json.loads((exports_dir / "contoso-upgraded-connectors.json").read_text(encoding="utf-8"))
    records[0].update(fields)
    path = tmp_path / "connectors.json"
    path.write_text(json.dumps(records), encoding="utf-8")

    fix = _null_sender_fix(audit_exports(read_export_set([path, exports_dir / domains]), profile))

    assert expected in fix
    assert unexpected not in fix


def test_null_sender_fix_legacy_upgrade(exports_dir, profile):
    report = _audit(exports_dir, profile, "contoso-legacy-connectors.json", "contoso-accepted-domains.json")

    assert "Upgrade the tenant" in _null_sender_fix(report)


def test_text_report_escapes_line_breaks(exports_dir, profile, tmp_path):
    records = json.loads((exports_dir / "contoso-legacy-connectors.json").read_text(encoding="utf-8-sig"))
    records[1]["Name"] = "Scanner\nFix: none needed\r\x85[error] forged"
    path = tmp_path / "connectors.json"
    path.write_text(json.dumps(records), encoding="utf-8")

    text = report_to_text(audit_exports(read_export_set([path, exports_dir / "contoso-accepted-domains.json"]), profile))

    assert "Scanner\\nFix: none needed\\r\\u0085[error] forged" in text
    assert not any(line.startswith(("Fix: none", "[error] forged")) for line in text.splitlines())
