from __future__ import annotations

import json

from typer.testing import CliRunner

from tenanttls.cli import app

NORTHWIND = {
    "TENANTTLS_CONNECTOR_NAME": "NorthwindInboundConnector",
    "TENANTTLS_LEGACY_CERTIFICATE_NAME": "*.northwind.example",
    "TENANTTLS_PROVIDER_ZONE": "northwindtls.example",
}


def _run(*arguments):
    return CliRunner().invoke(app, ["audit", *[str(a) for a in arguments]], env=NORTHWIND)


def test_audit_errors_exit_one(exports_dir):
    result = _run(exports_dir / "contoso-legacy-connectors.json", exports_dir / "contoso-accepted-domains.json")

    assert result.exit_code == 1
    assert "[error] shared-wildcard-certificate: NorthwindInboundConnector" in result.output


def test_audit_clean_exit_zero(exports_dir):
    result = _run(exports_dir / "contoso-upgraded-connectors.json", exports_dir / "contoso-upgraded-accepted-domains.txt")

    assert result.exit_code == 0
    assert "Null-sender mail attributed: yes" in result.output


def test_audit_json(exports_dir):
    result = _run("--json", exports_dir / "contoso-upgraded-connectors.json", exports_dir / "contoso-upgraded-accepted-domains.txt")
    document = json.loads(result.output)

    assert document["null_sender_attributed"] is True
    assert document["provider_connector"] == "NorthwindInboundConnector"


def test_audit_bad_file_reports_nothing(exports_dir, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('[{"Name": "x", ', encoding="utf-8")

    result = _run(exports_dir / "contoso-legacy-connectors.json", broken)

    assert isinstance(result.exception, Exception)
    assert "broken.json:1" in str(result.exception)
    assert "Tenant:" not in result.output


def test_audit_date_order_invalid(exports_dir):
    result = _run("--date-order", "ymd", exports_dir / "contoso-ip-connectors.txt")

    assert "--date-order" in str(result.exception)


def test_audit_bad_file_exit_two(exports_dir, tmp_path):
    import subprocess
    import sys

    broken = tmp_path / "broken.txt"
    broken.write_text("not an export at all\n", encoding="utf-8")
    command = [sys.executable, "-c", "from tenanttls.cli import main; main()", "audit", str(broken)]

    completed = subprocess.run(command, capture_output=True, text=True, env={**__import__("os").environ, **NORTHWIND})

    assert completed.returncode == 2
    assert f"{broken}:1" in completed.stderr
    assert completed.stdout == ""


def test_audit_tenant_guid_rejected(exports_dir):
    result = _run("--tenant", "72f988bf-86f1-41af-91ab-2d7cd011db47", exports_dir / "contoso-legacy-connectors.json")

    assert "is a tenant id" in str(result.exception)
    assert "--tenant NAME.onmicrosoft.com" in str(result.exception)
    assert "Tenant:" not in result.output


def test_audit_tenant_other_domain_rejected(exports_dir):
    result = _run("--tenant", "contoso.com", exports_dir / "contoso-legacy-connectors.json")

    assert "invalid --tenant 'contoso.com'" in str(result.exception)


def test_audit_tenant_domain_checked(exports_dir):
    result = _run("--tenant", "Fabrikam.onmicrosoft.com", exports_dir / "contoso-legacy-connectors.json")

    assert "the objects belong to contoso.onmicrosoft.com, but --tenant names fabrikam.onmicrosoft.com" in str(result.exception)


def test_audit_domains_only_not_checked(exports_dir):
    result = _run(exports_dir / "contoso-accepted-domains.json")

    assert "Provider's connector: not checked (no connector export)" in result.output
    assert "Null-sender mail attributed: not checked (no connector export)" in result.output


def test_audit_domains_only_json(exports_dir):
    document = json.loads(_run("--json", exports_dir / "contoso-accepted-domains.json").output)

    assert document["connectors_checked"] is False
    assert document["null_sender_attributed"] is None
    assert document["provider_connector"] is None


def test_audit_help_lists_encodings():
    text = " ".join(CliRunner().invoke(app, ["audit", "--help"]).output.split())

    assert "UTF-8 (with or without a byte order mark)" in text
    assert "UTF-16 or UTF-32 with a byte order mark" in text
    assert "any encoding" not in text
