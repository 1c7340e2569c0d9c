from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from tenanttls.errors import InvalidInput
from tenanttls.manual import powershell
from tenanttls.manual.script import (
    build_upgrade_input,
    render_rollback_script,
    render_upgrade_script,
)

from tests.manual.conftest import HOSTILE, NOW, TENANT_DOMAIN, TENANT_ID, UNIQUE, legacy_connector, northwind_settings
from tests.manual.psreader import read_calls, read_values

SNAPSHOTS = Path(__file__).parent / "snapshots"


def _matches_snapshot(name: str, text: str) -> bool:
    """Compare `text` with the stored snapshot; TENANTTLS_UPDATE_SNAPSHOTS=1 rewrites it."""
    path = SNAPSHOTS / name
    if os.environ.get("TENANTTLS_UPDATE_SNAPSHOTS") == "1":
        path.write_text(text, encoding="utf-8", newline="\n")
    return path.read_text(encoding="utf-8") == text


def _body(script: str) -> str:
    return script[script.index(powershell.VALUES_END) :]


def _values_lines(script: str) -> list[str]:
    start = script.index(powershell.VALUES_START)
    end = script.index(powershell.VALUES_END)
    return script[start:end].split("\n")[1:-1]


def test_upgrade_snapshot(upgrade_input):
    assert _matches_snapshot("upgrade.ps1", render_upgrade_script(upgrade_input))


def test_rollback_snapshot(rollback_input):
    assert _matches_snapshot("rollback.ps1", render_rollback_script(rollback_input))


def test_upgrade_structure(upgrade_input):
    script = render_upgrade_script(upgrade_input)

    assert script.startswith("#Requires -Version 5.1\n")
    assert "#Requires -Modules @{ ModuleName='ExchangeOnlineManagement'; ModuleVersion='3.0.0' }, Microsoft.Graph." in script
    assert script.index(powershell.VALUES_START) < script.index(powershell.VALUES_END)
    assert "$ErrorActionPreference = 'Stop'" in script
    assert "Start-Transcript -Path $TranscriptPath" in script
    assert script.rstrip().endswith("exit $exitCode")
    assert script.isascii()


def test_upgrade_values(upgrade_input):
    values = read_values(render_upgrade_script(upgrade_input))

    assert values["TenantId"] == TENANT_ID
    assert values["TenantDomain"] == TENANT_DOMAIN
    assert values["LegacyName"] == "NorthwindInboundConnector"
    assert values["BackupName"] == "NorthwindInboundConnector-BACKUP"
    assert values["UniqueName"] == UNIQUE
    assert values["ProofText"] == "MS=ms12345678"
    assert values["CopyCloudServicesMailEnabled"] is False
    assert values["ExpectedLegacy"]["TlsSenderCertificateName"] == "*.northwind.example"


def test_new_connector_parameters(upgrade_input):
    values = read_values(render_upgrade_script(upgrade_input))

    assert values["NewConnector"] == {
        "Name": "NorthwindInboundConnector",
        "SenderDomains": ["*"],
        "ConnectorType": "OnPremises",
        "RequireTls": True,
        "RestrictDomainsToCertificate": True,
        "RestrictDomainsToIPAddresses": False,
        "CloudServicesMailEnabled": False,
        "TreatMessagesAsInternal": False,
        "Enabled": True,
        "TlsSenderCertificateName": UNIQUE,
        "Comment": "Managed by tenanttls 0.1.0; run 01HZX3Q8W6; created 2026-02-15T08:00:00Z",
    }


def test_new_connector_matches_engine(upgrade_input):
    values = read_values(render_upgrade_script(upgrade_input))

    assert values["NewConnector"] == upgrade_input.new_connector.parameters()


def test_upgrade_without_snapshot():
    data = build_upgrade_input(
        northwind_settings(), tenant_id=TENANT_ID, tenant_domain=TENANT_DOMAIN, unique_name=UNIQUE, run_id="r", now=NOW
    )
    values = read_values(render_upgrade_script(data))

    assert values["CopyCloudServicesMailEnabled"] is True
    assert values["ExpectedLegacy"] is None
    assert values["LegacyName"] == "NorthwindInboundConnector"
    assert values["NewConnector"]["CloudServicesMailEnabled"] is True


def test_upgrade_calls(upgrade_input):
    calls = [(c.function, c.cmdlet, c.parameters, c.splats) for c in read_calls(render_upgrade_script(upgrade_input))]
    changes = [c for c in calls if c[1].split("-")[0] in ("New", "Set", "Remove", "Confirm")]

    assert changes == [
        ("Add-UniqueDomain", "New-MgDomain", {"BodyParameter": {"id": UNIQUE}}, []),
        ("Add-UniqueDomain", "Confirm-MgDomain", {"DomainId": UNIQUE}, []),
        ("Backup-LegacyConnector", "Remove-InboundConnector", {"Identity": "NorthwindInboundConnector-BACKUP", "Confirm": False}, []),
        ("Backup-LegacyConnector", "Set-InboundConnector", {"Identity": "NorthwindInboundConnector", "Name": "NorthwindInboundConnector-BACKUP"}, []),
        ("New-ProviderConnector", "New-InboundConnector", {}, ["NewConnector"]),
        ("New-ProviderConnector", "Set-InboundConnector", {"Identity": "NorthwindInboundConnector"}, ["changes"]),
    ]


@pytest.mark.parametrize("kind", ["upgrade", "rollback"])
def test_reads_before_changes(upgrade_input, rollback_input, kind):
    script = render_upgrade_script(upgrade_input) if kind == "upgrade" else render_rollback_script(rollback_input)
    lines = script.split("\n")
    readers = ("Get-InboundConnector", "Get-UniqueDomain", "Test-Connectors")

    for call in read_calls(script):
        if call.cmdlet.split("-")[0] in ("New", "Set", "Remove", "Confirm"):
            start = max(i for i in range(call.line) if lines[i].startswith("function "))
            before = "\n".join(lines[start : call.line - 1])
            assert any(reader in before for reader in readers), f"{call.cmdlet} in {call.function} changes without reading first"


def test_rollback_calls(rollback_input):
    calls = [(c.function, c.cmdlet, c.parameters, c.splats) for c in read_calls(render_rollback_script(rollback_input))]
    changes = [c for c in calls if c[1].split("-")[0] in ("New", "Set", "Remove")]

    assert changes == [
        ("Remove-OurConnector", "Remove-InboundConnector", {"Identity": "NorthwindInboundConnector", "Confirm": False}, []),
        ("Restore-LegacyName", "Set-InboundConnector", {"Identity": "NorthwindInboundConnector-BACKUP", "Name": "NorthwindInboundConnector"}, []),
        ("Restore-LegacyName", "New-InboundConnector", {}, ["SnapshotConnector"]),
        ("Restore-LegacySettings", "Set-InboundConnector", {"Identity": "NorthwindInboundConnector"}, ["changes"]),
    ]
    assert not any(c[1].endswith("MgDomain") for c in calls)


def test_rollback_snapshot_values(rollback_input):
    values = read_values(render_rollback_script(rollback_input))

    assert values["SnapshotConnector"] == {
        "Name": "NorthwindInboundConnector",
        "Enabled": True,
        "ConnectorType": "OnPremises",
        "SenderDomains": ["*"],
        "TlsSenderCertificateName": "*.northwind.example",
        "RequireTls": True,
        "RestrictDomainsToCertificate": True,
        "RestrictDomainsToIPAddresses": False,
        "CloudServicesMailEnabled": False,
        "TreatMessagesAsInternal": False,
        "Comment": "Set up by Northwind support",
    }
    assert values["SnapshotSettings"]["SenderIPAddresses"] == []


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_legacy_connector(upgrade_input, hostile):
    snapshot = legacy_connector(name=hostile, comment=hostile, TrustedOrganizations=[hostile])
    data = replace(upgrade_input, snapshot=snapshot, legacy_name=hostile, proof_text=hostile)
    plain = render_upgrade_script(upgrade_input)
    script = render_upgrade_script(data)
    values = read_values(script)

    assert values["LegacyName"] == hostile
    assert values["BackupName"] == hostile + "-BACKUP"
    assert values["ProofText"] == hostile
    assert values["ExpectedLegacy"]["TrustedOrganizations"] == [hostile]
    assert _body(script) == _body(plain)
    assert len(_values_lines(script)) == len(_values_lines(plain))
    assert script.isascii()


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_rollback_snapshot(rollback_input, hostile):
    snapshot = legacy_connector(name=hostile, comment=hostile, SenderDomains=[f"smtp:{hostile};1"])
    plain = render_rollback_script(rollback_input)
    script = render_rollback_script(replace(rollback_input, snapshot=snapshot))
    values = read_values(script)

    assert values["LegacyName"] == hostile
    assert values["SnapshotConnector"]["Name"] == hostile
    assert values["SnapshotConnector"]["Comment"] == hostile
    assert _body(script) == _body(plain)
    assert len(_values_lines(script)) == len(_values_lines(plain))
    assert script.isascii()


@pytest.mark.parametrize("hostile", [h for h in HOSTILE if not any(c in h for c in '\\/:*?"<>|\r\n\t\x00')])
def test_hostile_provider_connector_name(hostile):
    # Settings allow any name Exchange accepts, which includes quotes, '$' and backticks.
    name = hostile.strip()[:64]
    data = build_upgrade_input(
        northwind_settings(name), tenant_id=TENANT_ID, tenant_domain=TENANT_DOMAIN, unique_name=UNIQUE, run_id="r", now=NOW
    )
    values = read_values(render_upgrade_script(data))

    assert values["ConnectorName"] == name
    assert values["NewConnector"]["Name"] == name


def test_values_never_in_comments(upgrade_input):
    snapshot = legacy_connector(name="#> Stop-Computer <#")
    script = render_upgrade_script(replace(upgrade_input, snapshot=snapshot, legacy_name=snapshot.name))

    header = script[: script.index(powershell.VALUES_START)]
    assert "Stop-Computer" not in header
    assert script.count("Stop-Computer") == 2  # in $LegacyName and $BackupName only


@pytest.mark.parametrize(
    ("field", "value"),
    [("tenant_id", "contoso"), ("tenant_domain", "contoso.com'; x"), ("unique_name", "a'b.example")],
)
def test_invalid_tenant_values(field, value):
    arguments = dict(tenant_id=TENANT_ID, tenant_domain=TENANT_DOMAIN, unique_name=UNIQUE)
    arguments[field] = value

    with pytest.raises(InvalidInput):
        build_upgrade_input(northwind_settings(), run_id="r", now=NOW, **arguments)


def test_rollback_invalid_connector_name(rollback_input):
    with pytest.raises(InvalidInput):
        render_rollback_script(replace(rollback_input, connector_name="a|b"))



@pytest.mark.parametrize("proof", ["garbage", "MS=ms1234567", "MS=ms123456789", "ms=ms12345678", "MS=ms1234567x", "v=spf1 -all"])
def test_invalid_proof_rejected(proof):
    with pytest.raises(InvalidInput) as caught:
        build_upgrade_input(
            northwind_settings(), tenant_id=TENANT_ID, tenant_domain=TENANT_DOMAIN, unique_name=UNIQUE,
            run_id="r", now=NOW, proof_text=proof,
        )

    assert "MS=ms" in str(caught.value)
    assert "8 digits" in str(caught.value)


def test_proof_spaces_trimmed():
    data = build_upgrade_input(
        northwind_settings(), tenant_id=TENANT_ID, tenant_domain=TENANT_DOMAIN, unique_name=UNIQUE,
        run_id="r", now=NOW, proof_text=" MS=ms12345678 ",
    )

    assert data.proof_text == "MS=ms12345678"


def test_rollback_requires_module_version(rollback_input):
    script = render_rollback_script(rollback_input)

    assert "#Requires -Modules @{ ModuleName='ExchangeOnlineManagement'; ModuleVersion='3.0.0' }\n" in script


@pytest.mark.parametrize("kind", ["upgrade", "rollback"])
def test_summary_lists_only_exports(upgrade_input, rollback_input, kind):
    script = render_upgrade_script(upgrade_input) if kind == "upgrade" else render_rollback_script(rollback_input)
    command = next(line for line in script.splitlines() if "tenanttls manual done" in line)

    assert command.count("--export") == 2
    assert "$ConnectorsExportPath" in command
    assert "$DomainsExportPath" in command
    assert "$TranscriptPath" not in command
    assert "<each file>" not in script
