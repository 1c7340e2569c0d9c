from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tenanttls.audit import DateOrder, ExportKind, read_export, read_export_set
from tenanttls.errors import ExportError

from tests.audit.conftest import UNIQUE


def _copy_text(source: Path, target: Path, encoding: str, bom: bytes = b"") -> Path:
    """Write the text of `source` (any fixture encoding) to `target` in `encoding`."""
    text = read_text(source)
    target.write_bytes(bom + text.encode(encoding))
    return target


def read_text(path: Path) -> str:
    """Return a fixture's text with LF line ends, whatever its encoding."""
    data = path.read_bytes()
    if data.startswith(b"\xff\xfe"):
        text = data[2:].decode("utf-16-le")
    elif data.startswith(b"\xef\xbb\xbf"):
        text = data[3:].decode("utf-8")
    else:
        text = data.decode("utf-8")
    return text.replace("\r\n", "\n")


def test_windows_powershell_json(exports_dir):
    export = read_export(exports_dir / "contoso-legacy-connectors.json")

    assert export.kind is ExportKind.CONNECTORS
    assert export.form == "json"
    assert export.tenant == "contoso.onmicrosoft.com"
    assert [c.name for c in export.connectors] == ["NorthwindInboundConnector", "Contoso Scanner"]


def test_json_values_typed(exports_dir):
    provider = read_export(exports_dir / "contoso-legacy-connectors.json").connectors[0]

    assert provider.sender_domains == ("*",)
    assert provider.connector_source == "Default"
    assert provider.tls_sender_certificate_name == "*.northwind.example"
    assert provider.require_tls is True
    assert provider.when_created == datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)


def test_powershell7_json(exports_dir):
    export = read_export(exports_dir / "contoso-upgraded-connectors.json")

    assert export.connectors[0].tls_sender_certificate_name == UNIQUE
    assert export.connectors[0].when_created == datetime(2026, 2, 15, 8, 0, tzinfo=timezone.utc)
    assert export.connectors[1].name == "NorthwindInboundConnector-BACKUP"


def test_format_list_utf16(exports_dir):
    export = read_export(exports_dir / "contoso-upgraded-accepted-domains.txt")

    assert export.kind is ExportKind.ACCEPTED_DOMAINS
    assert export.form == "format-list"
    assert export.encoding == "utf-16-le"
    assert export.tenant == "contoso.onmicrosoft.com"
    assert UNIQUE in [d.domain_name for d in export.accepted_domains]


def test_format_list_german_dates(exports_dir):
    export = read_export(exports_dir / "contoso-upgraded-accepted-domains.txt")

    assert export.records[0].values["WhenCreatedUTC"] == datetime(2021, 3, 4, 9, 12, 30)
    assert export.notes == ()


def test_format_list_wrapped_values(exports_dir):
    export = read_export(exports_dir / "contoso-upgraded-accepted-domains.txt")

    name = export.records[0].values["DistinguishedName"]
    assert name.endswith(",DC=PROD,DC=OUTLOOK,DC=COM")
    assert "CN=Configuration,CN=contoso.onmicrosoft.com," in name


def test_format_list_lists_and_bom(exports_dir):
    export = read_export(exports_dir / "contoso-ip-connectors.txt")

    assert export.encoding == "utf-8"
    assert export.connectors[0].sender_ip_addresses == ("192.0.2.25", "192.0.2.26", "192.0.2.27")
    assert export.connectors[0].sender_domains == ("*",)
    assert export.records[0].values["TrustedOrganizations"] == ()


def test_format_list_us_dates_assumed(exports_dir):
    export = read_export(exports_dir / "contoso-ip-connectors.txt")

    assert export.records[0].values["WhenCreatedUTC"] == datetime(2020, 5, 3, 16, 30)
    assert "month/day" in export.notes[0]
    assert "slashes and AM/PM" in export.notes[0]
    assert "--date-order dmy" in export.notes[0]


def test_format_list_dotted_dates_note(exports_dir, tmp_path):
    text = read_text(exports_dir / "contoso-ip-connectors.txt")
    text = re.sub(r"(\d{1,2})/(\d{1,2})/(\d{4}) (\d{1,2}):(\d{2}):(\d{2}) [AP]M", r"\2.\1.\3 \4:\5:\6", text)
    path = tmp_path / "dotted.txt"
    path.write_text(text, encoding="utf-8")

    export = read_export(path)

    assert "day/month because they have dots or dashes" in export.notes[0]
    assert "no day is above 12" not in export.notes[0]
    assert export.records[0].values["WhenCreatedUTC"] == datetime(2020, 5, 3, 4, 30)


def test_date_order_option(exports_dir):
    export = read_export(exports_dir / "contoso-ip-connectors.txt", date_order=DateOrder.DAY_FIRST)

    assert export.records[0].values["WhenCreatedUTC"] == datetime(2020, 3, 5, 16, 30)
    assert export.notes == ()


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [
        ("utf-8", b""),
        ("utf-8", b"\xef\xbb\xbf"),
        ("utf-16-le", b"\xff\xfe"),
        ("utf-16-be", b"\xfe\xff"),
        ("utf-32-le", b"\xff\xfe\x00\x00"),
        ("utf-16-le", b""),
    ],
)
def test_encodings(exports_dir, tmp_path, encoding, bom):
    path = _copy_text(exports_dir / "contoso-legacy-connectors.json", tmp_path / "export.json", encoding, bom)

    export = read_export(path)

    assert export.encoding == encoding
    assert len(export.connectors) == 2


def test_single_object(exports_dir):
    export = read_export(exports_dir / "fabrikam-accepted-domains.json")

    assert export.tenant == "fabrikam.onmicrosoft.com"
    assert export.accepted_domains[0].initial is True


def test_value_wrapper(exports_dir, tmp_path):
    records = json.loads(read_text(exports_dir / "contoso-legacy-connectors.json"))
    records[0]["SenderDomains"] = {"value": ["smtp:*;1"], "Count": 1}
    path = tmp_path / "wrapped.json"
    text = json.dumps({"value": records, "Count": 2}, indent=4)
    path.write_text(text, encoding="utf-8")

    export = read_export(path)

    assert export.connectors[0].sender_domains == ("*",)
    second_start = text.index("{", text.index("},"))
    assert export.records[1].line == text[:second_start].count("\n") + 1


def test_record_lines(exports_dir):
    export = read_export(exports_dir / "contoso-legacy-connectors.json")

    assert export.records[0].line == 2
    assert export.records[1].line > export.records[0].line


# --- bad input ------------------------------------------------------------------------------------


def _error(path: Path, **options) -> ExportError:
    with pytest.raises(ExportError) as caught:
        read_export(path, **options)
    return caught.value


def test_truncated_json(exports_dir, tmp_path):
    data = (exports_dir / "contoso-legacy-connectors.json").read_bytes()
    path = tmp_path / "cut.json"
    path.write_bytes(data[: len(data) // 2])

    error = _error(path)

    assert "truncated" in str(error)
    assert str(path) in str(error)
    assert error.line is not None


def test_truncated_utf16(exports_dir, tmp_path):
    data = (exports_dir / "contoso-upgraded-accepted-domains.txt").read_bytes()
    path = tmp_path / "cut.txt"
    path.write_bytes(data[:1001])

    error = _error(path)

    assert "UTF-16-LE" in str(error)
    assert "truncated" in str(error)


def test_truncated_format_list(exports_dir, tmp_path):
    text = read_text(exports_dir / "contoso-ip-connectors.txt")
    path = tmp_path / "cut.txt"
    path.write_text(text[: text.index("ObjectState")] + "Object", encoding="utf-8")

    error = _error(path)

    assert "truncated" in str(error)
    assert error.line == text[: text.index("ObjectState")].count("\n") + 1


def test_format_list_record_missing_fields(exports_dir, tmp_path):
    text = read_text(exports_dir / "contoso-ip-connectors.txt")
    second = text.index("\n\nEnabled", 10)
    cut = text[: text.index("RequireTls", second)]
    path = tmp_path / "cut.txt"
    path.write_text(cut, encoding="utf-8")

    error = _error(path)

    assert "lacks Name, RequireTls" in str(error)
    assert error.line == text[:second].count("\n") + 3


def _list_objects(exports_dir) -> list[list[str]]:
    """Return the lines of each object of the Format-List connector fixture."""
    text = read_text(exports_dir / "contoso-ip-connectors.txt")
    return [block.split("\n") for block in text.strip("\n").split("\n\n")]


def _write_objects(path: Path, objects: list[list[str]]) -> Path:
    path.write_text("\n\n" + "\n\n".join("\n".join(lines) for lines in objects) + "\n\n\n", encoding="utf-8")
    return path


def test_format_list_object_cut_off(exports_dir, tmp_path):
    first, second = _list_objects(exports_dir)
    third = [line.replace("NorthwindInboundConnector", "Third") for line in first]
    fourth = [line.replace("Contoso Scanner", "Fourth") for line in second]
    path = _write_objects(tmp_path / "cut.txt", [first, second, third[:-15], fourth][:3])
    last_line = read_text(path).rstrip("\n").count("\n") + 1

    error = _error(path)

    assert f"{path}:{last_line}: the object that starts on line" in str(error)
    assert "without IsValid, ObjectState" in str(error)
    assert "cut off" in str(error)
    assert error.line == last_line


def test_format_list_single_object_cut_off(exports_dir, tmp_path):
    first, _ = _list_objects(exports_dir)
    path = _write_objects(tmp_path / "cut.txt", [first[:-3]])

    error = _error(path)

    assert "without IsValid, ObjectState" in str(error)


def test_format_list_object_lacks_field(exports_dir, tmp_path):
    first, second = _list_objects(exports_dir)
    edited = [line for line in second if not line.startswith("EFUsers")]
    path = _write_objects(tmp_path / "edited.txt", [first, edited])

    error = _error(path)

    assert "lacks EFUsers, which every other object in the file has" in str(error)
    assert error.line == len(first) + 4
    assert error.field == "EFUsers"


def test_format_list_complete_objects_read(exports_dir, tmp_path):
    first, second = _list_objects(exports_dir)
    path = _write_objects(tmp_path / "whole.txt", [first, second])

    assert len(read_export(path).connectors) == 2


def test_other_tenant(exports_dir):
    with pytest.raises(ExportError) as caught:
        read_export_set([exports_dir / "contoso-legacy-connectors.json", exports_dir / "fabrikam-accepted-domains.json"])

    assert "fabrikam.onmicrosoft.com" in str(caught.value)
    assert caught.value.path.endswith("fabrikam-accepted-domains.json")


def test_tenant_option_mismatch(exports_dir):
    with pytest.raises(ExportError) as caught:
        read_export_set([exports_dir / "contoso-legacy-connectors.json"], tenant="fabrikam.onmicrosoft.com")

    assert "--tenant" in str(caught.value)


def test_mixed_tenants_in_one_file(exports_dir, tmp_path):
    records = json.loads(read_text(exports_dir / "contoso-accepted-domains.json"))
    records.append(json.loads(read_text(exports_dir / "fabrikam-accepted-domains.json")))
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(records, indent=4), encoding="utf-8")

    error = _error(path)

    assert "fabrikam.onmicrosoft.com" in str(error)
    assert error.line is not None


def test_unknown_field(exports_dir, tmp_path):
    records = json.loads(read_text(exports_dir / "contoso-legacy-connectors.json"))
    records[1]["TlsSenderCertificateNmae"] = "typo.contoso.com"
    path = tmp_path / "unknown.json"
    path.write_text(json.dumps(records, indent=4), encoding="utf-8")

    error = _error(path)

    assert error.field == "TlsSenderCertificateNmae"
    assert "--allow-unknown-fields" in str(error)
    assert error.line > 49


def test_unknown_field_allowed(exports_dir, tmp_path):
    records = json.loads(read_text(exports_dir / "contoso-legacy-connectors.json"))
    records[1]["NewMicrosoftField"] = True
    path = tmp_path / "unknown.json"
    path.write_text(json.dumps(records, indent=4), encoding="utf-8")

    export = read_export(path, allow_unknown_fields=True)

    assert [name for name, _ in export.unknown_fields] == ["NewMicrosoftField"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("This is the customer's mail: please see the attachment.\n", "neither JSON nor Format-List output"),
        ("Name                      Enabled ConnectorType\n----                      ------- -------------\n", "Format-Table"),
        ('#TYPE Deserialized.Microsoft.Exchange.Data.Directory.SystemConfiguration.TenantInboundConnector\n"Name"\n', "Export-Csv"),
        ("", "empty"),
        ("\n\n   \n", "empty"),
        ('{"Name": "x", "Size": 3}', "not an export of Get-InboundConnector or Get-AcceptedDomain"),
        ("[1, 2]", "expected an object"),
        ("[]", "the file contains no objects"),
    ],
)
def test_not_an_export(tmp_path, content, expected):
    path = tmp_path / "input.txt"
    path.write_text(content, encoding="utf-8")

    error = _error(path)

    assert expected in str(error)
    assert str(path) in str(error)


def test_html_named_json(tmp_path):
    path = tmp_path / "connectors.json"
    path.write_text("<!DOCTYPE html>\n<html><body>Sign in</body></html>\n", encoding="utf-8")

    error = _error(path)

    assert f"{path}:1: the file is neither JSON nor Format-List output" in str(error)
    assert "'<!DOCTYPE html>'" in str(error)


def test_format_list_bad_later_line(exports_dir, tmp_path):
    text = read_text(exports_dir / "contoso-ip-connectors.txt").replace("RequireTls  ", "Require Tls ", 1)
    path = tmp_path / "edited.txt"
    path.write_text(text, encoding="utf-8")

    error = _error(path)

    assert "expected 'Name : Value' as Format-List writes it" in str(error)


def test_invalid_utf8(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("Name : Nörthwind\n".encode("latin-1"))

    error = _error(path)

    assert "not valid UTF-8" in str(error)
    assert error.line == 1


def test_missing_file(tmp_path):
    error = _error(tmp_path / "absent.json")

    assert "cannot read" in str(error)


def test_select_object_export(exports_dir, tmp_path):
    records = json.loads(read_text(exports_dir / "contoso-legacy-connectors.json"))
    path = tmp_path / "select.json"
    path.write_text(json.dumps([{"Name": r["Name"], "Enabled": r["Enabled"], "ConnectorType": "OnPremises"} for r in records]))

    error = _error(path)

    assert "Select-Object" in str(error)
    assert error.field == "SenderDomains"


def test_shallow_json(exports_dir, tmp_path):
    records = json.loads(read_text(exports_dir / "contoso-legacy-connectors.json"))
    records[0]["SenderDomains"] = "Microsoft.Exchange.Data.MultiValuedProperty`1[Microsoft.Exchange.Data.AddressSpace]"
    path = tmp_path / "shallow.json"
    path.write_text(json.dumps(records, indent=4), encoding="utf-8")

    error = _error(path)

    assert "-Depth 5" in str(error)
    assert error.field == "SenderDomains"


def test_enum_as_number(exports_dir, tmp_path):
    records = json.loads(read_text(exports_dir / "contoso-legacy-connectors.json"))
    records[0]["ConnectorType"] = 1
    path = tmp_path / "enum.json"
    path.write_text(json.dumps(records, indent=4), encoding="utf-8")

    error = _error(path)

    assert "-EnumsAsStrings" in str(error)
    assert error.field == "ConnectorType"


def test_wrong_boolean(exports_dir, tmp_path):
    records = json.loads(read_text(exports_dir / "contoso-legacy-connectors.json"))
    records[0]["RequireTls"] = "Yes please"
    path = tmp_path / "bool.json"
    path.write_text(json.dumps(records, indent=4), encoding="utf-8")

    error = _error(path)

    assert error.field == "RequireTls"
    assert error.line == 14


def test_cut_list(exports_dir, tmp_path):
    text = read_text(exports_dir / "contoso-ip-connectors.txt")
    text = text.replace("{192.0.2.25, 192.0.2.26, 192.0.2.27}", "{192.0.2.25, 192.0.2.26, 192.0.2.27, 192.0.2.28...}")
    path = tmp_path / "cut-list.txt"
    path.write_text(text, encoding="utf-8")

    error = _error(path)

    assert "$FormatEnumerationLimit" in str(error)
    assert error.field == "SenderIPAddresses"


def test_duplicate_key_in_record(tmp_path):
    path = tmp_path / "joined.txt"
    path.write_text("DomainName : contoso.com\nDomainType : Authoritative\nDomainName : fabrikam.com\n", encoding="utf-8")

    error = _error(path)

    assert error.field == "DomainName"
    assert error.line == 3


def test_mixed_date_cultures(exports_dir, tmp_path):
    text = read_text(exports_dir / "contoso-ip-connectors.txt")
    text = text.replace("WhenChanged                            : 11/2/2023", "WhenChanged                            : 13/2/2023", 1)
    text = text.replace("WhenCreated                            : 5/3/2020", "WhenCreated                            : 5/13/2020", 1)
    path = tmp_path / "mixed-dates.txt"
    path.write_text(text, encoding="utf-8")

    error = _error(path)

    assert "day-first and month-first" in str(error)
