from __future__ import annotations

from datetime import datetime, timezone

from tenanttls.domain.exchange import AcceptedDomain, InboundConnector
from tenanttls.domain.graph import Domain
from tenanttls.migration.changes import (
    AddDomain,
    AwaitAcceptedDomain,
    CreateConnector,
    PublishVerificationRecord,
    RemoveConnector,
    RenameConnector,
    SaveSnapshot,
    SetConnector,
    SwitchRelay,
    VerifyDomain,
)
from tenanttls.migration.planner import (
    Desired,
    Observation,
    is_ours,
    plan_accepted,
    plan_connectors,
    plan_domain,
    plan_tenant,
    stamp_comment,
)
from tenanttls.migration.safety import Overrides

TENANT = "11111111-2222-4333-8444-555555555555"
UNIQUE = "abcdefghijklmnopqrstuvwxyz.crosswaretls.com"
NOW = datetime(2026, 3, 1, tzinfo=timezone.utc)


def _connector(name: str = "CrosswareInboundConnector", **fields) -> InboundConnector:
    raw = {
        "Name": name,
        "Enabled": True,
        "ConnectorType": "OnPremises",
        "ConnectorSource": "AdminUI",
        "SenderDomains": ["smtp:*;1"],
        "TlsSenderCertificateName": "*.crossware.co.nz",
        "RequireTls": True,
        "RestrictDomainsToCertificate": True,
        "CloudServicesMailEnabled": True,
        "Comment": "",
    }
    raw.update(fields)
    return InboundConnector.from_exchange(raw)


def _ours(**fields) -> InboundConnector:
    values = {"TlsSenderCertificateName": UNIQUE, "Comment": stamp_comment("0.1.0", "run1", NOW)}
    values.update(fields)
    return _connector(**values)


def _desired(**overrides) -> Desired:
    return Desired(
        connector_name="CrosswareInboundConnector",
        legacy_certificate_name="*.crossware.co.nz",
        zone="crosswaretls.com",
        unique_name=UNIQUE,
        comment=stamp_comment("0.1.0", "run1", NOW),
        overrides=Overrides(**overrides),
    )


def _types(changes) -> list[str]:
    return [type(change).__name__ for change in changes]


def test_fresh_tenant_renames_then_creates():
    plan = plan_connectors(TENANT, [_connector()], _desired())

    assert _types(plan.changes) == ["SaveSnapshot", "RenameConnector", "CreateConnector"]
    assert plan.changes[1] == RenameConnector("CrosswareInboundConnector", "CrosswareInboundConnector-BACKUP")
    assert plan.violations == ()


def test_new_connector_settings():
    plan = plan_connectors(TENANT, [_connector()], _desired())

    settings = plan.changes[-1].settings
    assert settings.name == "CrosswareInboundConnector"
    assert settings.tls_sender_certificate_name == UNIQUE
    assert settings.sender_domains == ("*",)
    assert settings.require_tls is True
    assert settings.restrict_domains_to_certificate is True
    assert settings.connector_type == "OnPremises"
    assert settings.comment.startswith("Managed by tenanttls 0.1.0; run run1")


def test_cloud_services_copied_from_old():
    plan = plan_connectors(TENANT, [_connector(CloudServicesMailEnabled=False)], _desired())

    assert plan.changes[-1].settings.cloud_services_mail_enabled is False


def test_backup_with_other_settings_rejected():
    backup = _connector("CrosswareInboundConnector-BACKUP", RequireTls=False)

    plan = plan_connectors(TENANT, [_connector(), backup], _desired())

    assert [violation.code for violation in plan.violations] == ["backup_exists"]
    assert "CrosswareInboundConnector-BACKUP" in plan.violations[0].message
    assert "--force-backup-overwrite" in plan.violations[0].message
    assert plan.violations[0].flag == "--force-backup-overwrite"


def test_backup_overwrite_override():
    backup = _connector("CrosswareInboundConnector-BACKUP", RequireTls=False)

    plan = plan_connectors(TENANT, [_connector(), backup], _desired(force_backup_overwrite=True))

    assert plan.violations == ()
    assert _types(plan.changes) == ["SaveSnapshot", "RemoveConnector", "SaveSnapshot", "RenameConnector", "CreateConnector"]
    assert plan.changes[1].connector_name == "CrosswareInboundConnector-BACKUP"


def test_identical_backup_replaced():
    backup = _connector("CrosswareInboundConnector-BACKUP")

    plan = plan_connectors(TENANT, [_connector(), backup], _desired())

    assert plan.violations == ()
    assert isinstance(plan.changes[1], RemoveConnector)


def test_foreign_unique_name_rejected():
    foreign = _connector("Someone Else", TlsSenderCertificateName=UNIQUE)

    plan = plan_connectors(TENANT, [_connector(), foreign], _desired())

    assert [violation.code for violation in plan.violations] == ["foreign_connector"]
    assert "'Someone Else'" in plan.violations[0].message
    assert "--allow-foreign-connector" in plan.violations[0].message


def test_foreign_unique_name_allowed():
    foreign = _connector("Someone Else", TlsSenderCertificateName=UNIQUE)

    plan = plan_connectors(TENANT, [_connector(), foreign], _desired(allow_foreign_connector=True))

    assert plan.violations == ()
    assert isinstance(plan.changes[-1], CreateConnector)


def test_unrelated_connector_ignored():
    other = _connector("Contoso Archive", TlsSenderCertificateName="mx.archive.example")

    plan = plan_connectors(TENANT, [_connector(), other], _desired())

    assert plan.violations == ()
    assert all("Contoso Archive" not in line for change in plan.changes for line in change.describe())


def test_several_legacy_rejected():
    second = _connector("Crossware Old")

    plan = plan_connectors(TENANT, [_connector(), second], _desired())

    assert [violation.code for violation in plan.violations] == ["several_legacy"]
    assert "'Crossware Old'" in plan.violations[0].message
    assert "--legacy-connector NAME" in plan.violations[0].message


def test_legacy_connector_override():
    second = _connector("Crossware Old")

    plan = plan_connectors(TENANT, [_connector(), second], _desired(legacy_connector="CrosswareInboundConnector"))

    assert plan.violations == ()
    assert plan.legacy_name == "CrosswareInboundConnector"


def test_legacy_connector_override_unknown():
    plan = plan_connectors(TENANT, [_connector()], _desired(legacy_connector="Nope"))

    assert [violation.code for violation in plan.violations] == ["several_legacy"]
    assert "'Nope'" in plan.violations[0].message


def test_name_taken_rejected():
    legacy = _connector("Crossware Legacy")
    squatter = _connector("CrosswareInboundConnector", TlsSenderCertificateName="mail.other.example")

    plan = plan_connectors(TENANT, [legacy, squatter], _desired(legacy_connector="Crossware Legacy"))

    assert [violation.code for violation in plan.violations] == ["name_taken"]
    assert "--adopt-connector" in plan.violations[0].message


def test_adopt_connector_sets_marker():
    snapshot = _connector()
    squatter = _connector("CrosswareInboundConnector", TlsSenderCertificateName="mail.other.example")
    backup = _connector("CrosswareInboundConnector-BACKUP")

    plan = plan_connectors(TENANT, [backup, squatter], _desired(adopt_connector=True), snapshot)

    assert plan.violations == ()
    [change] = plan.changes
    assert isinstance(change, SetConnector)
    assert change.parameters["TlsSenderCertificateName"] == UNIQUE
    assert change.parameters["Comment"].startswith("Managed by tenanttls")


def test_after_rename_creates_only():
    snapshot = _connector()
    backup = _connector("CrosswareInboundConnector-BACKUP")

    plan = plan_connectors(TENANT, [backup], _desired(), snapshot)

    assert _types(plan.changes) == ["CreateConnector"]


def test_converged_has_no_changes():
    snapshot = _connector()
    backup = _connector("CrosswareInboundConnector-BACKUP")

    plan = plan_connectors(TENANT, [backup, _ours()], _desired(), snapshot)

    assert plan.changes == ()
    assert plan.violations == ()


def test_drifted_connector_set():
    snapshot = _connector()
    backup = _connector("CrosswareInboundConnector-BACKUP")

    plan = plan_connectors(TENANT, [backup, _ours(RequireTls=False, Enabled=False)], _desired(), snapshot)

    [change] = plan.changes
    assert change.parameters == {"RequireTls": True, "Enabled": True}
    assert change.differences["RequireTls"] == (False, True)
    assert "  RequireTls: $false → $true" in change.describe()


def test_backup_missing_after_rename():
    plan = plan_connectors(TENANT, [_ours()], _desired(), _connector())

    assert [violation.code for violation in plan.violations] == ["backup_missing"]
    assert "tenanttls rollback" in plan.violations[0].message


def test_no_legacy_connector_noted():
    plan = plan_connectors(TENANT, [], _desired())

    assert _types(plan.changes) == ["CreateConnector"]
    assert "nothing to back up" in plan.notes[0]


def test_ownership_marker():
    assert is_ours(_ours())
    assert not is_ours(_connector())


def test_domain_plan_absent():
    assert plan_domain(UNIQUE, None) == [AddDomain(UNIQUE), PublishVerificationRecord(UNIQUE), VerifyDomain(UNIQUE)]


def test_domain_plan_unverified():
    assert plan_domain(UNIQUE, Domain(id=UNIQUE, is_verified=False)) == [PublishVerificationRecord(UNIQUE), VerifyDomain(UNIQUE)]


def test_domain_plan_verified():
    assert plan_domain(UNIQUE, Domain(id=UNIQUE, is_verified=True)) == []


def test_accepted_plan_case_insensitive():
    listed = [AcceptedDomain(domain_name=UNIQUE, name=UNIQUE.upper(), domain_type="Authoritative", default=False, initial=False)]

    assert plan_accepted(UNIQUE.upper(), listed) == []
    assert plan_accepted(UNIQUE, []) == [AwaitAcceptedDomain(UNIQUE)]


def test_full_plan_dependency_order():
    observation = Observation(
        tenant_id=TENANT, state="domain", has_certificate=True, graph_domain=None, accepted_domains=[],
        connectors=[_connector()], snapshot=None, relay_mode="legacy", grace_until=None,
    )

    plan = plan_tenant(observation, _desired())

    kinds = _types(plan.changes)
    assert kinds.index("AddDomain") < kinds.index("VerifyDomain") < kinds.index("AwaitAcceptedDomain")
    assert kinds.index("AwaitAcceptedDomain") < kinds.index("RenameConnector") < kinds.index("CreateConnector")
    assert kinds.index("CreateConnector") < kinds.index("SwitchRelay") < kinds.index("ProbeMailFlow")
    assert plan.is_safe


def test_full_plan_without_identity():
    observation = Observation(
        tenant_id=TENANT, state="awaiting_consent", has_certificate=False, graph_domain=None, accepted_domains=[],
        connectors=[_connector()], snapshot=None, relay_mode="legacy", grace_until=None,
    )
    desired = Desired("CrosswareInboundConnector", "*.crossware.co.nz", "crosswaretls.com", None, "c")

    plan = plan_tenant(observation, desired)

    assert _types(plan.changes)[:2] == ["AllocateIdentity", "IssueCertificate"]
    assert any("<unique name>.crosswaretls.com" in line for line in plan.describe())


def test_plan_json_shape():
    observation = Observation(
        tenant_id=TENANT, state="backup", has_certificate=True, graph_domain=Domain(id=UNIQUE, is_verified=True),
        accepted_domains=[], connectors=[_connector()], snapshot=None, relay_mode="legacy", grace_until=None,
    )

    document = plan_tenant(observation, _desired()).to_json()

    assert document["tenant_id"] == TENANT
    assert document["safe"] is True
    assert document["changes"][0]["type"] == "AwaitAcceptedDomain"
    assert isinstance(document["changes"][0]["description"], list)


def test_switch_absent_after_switch():
    observation = Observation(
        tenant_id=TENANT, state="completed", has_certificate=True, graph_domain=Domain(id=UNIQUE, is_verified=True),
        accepted_domains=[AcceptedDomain(UNIQUE, UNIQUE, "Authoritative", False, False)],
        connectors=[_connector("CrosswareInboundConnector-BACKUP"), _ours()], snapshot=_connector(),
        relay_mode="unique", grace_until=None,
    )

    plan = plan_tenant(observation, _desired())

    assert plan.changes == ()
    assert plan.describe() == ["no changes: the tenant is in the desired state"]
    assert not any(isinstance(change, (SwitchRelay, SaveSnapshot)) for change in plan.changes)


def test_foreign_connector_with_legacy_name_rejected():
    foreign = _connector(TlsSenderCertificateName="mx.othervendor.example", Comment="other vendor")

    plan = plan_connectors(TENANT, [foreign], _desired())

    assert [violation.code for violation in plan.violations] == ["legacy_unconfirmed"]
    assert "mx.othervendor.example" in plan.violations[0].message
    assert "--legacy-connector 'CrosswareInboundConnector'" in plan.violations[0].message
    assert not any(isinstance(change, RenameConnector) for change in plan.changes)


def test_foreign_connector_with_legacy_name_confirmed():
    foreign = _connector(TlsSenderCertificateName="mx.othervendor.example")

    plan = plan_connectors(TENANT, [foreign], _desired(legacy_connector="CrosswareInboundConnector"))

    assert plan.violations == ()
    assert plan.changes[1] == RenameConnector("CrosswareInboundConnector", "CrosswareInboundConnector-BACKUP")


def test_foreign_wildcard_covering_unique_name_rejected():
    foreign = _connector("Wildcard Vendor", TlsSenderCertificateName="*.crosswaretls.com")

    plan = plan_connectors(TENANT, [_connector(), foreign], _desired())

    assert [violation.code for violation in plan.violations] == ["foreign_connector"]
    assert "'Wildcard Vendor'" in plan.violations[0].message
    assert "--allow-foreign-connector" in plan.violations[0].message
