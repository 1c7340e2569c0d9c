from __future__ import annotations

import pytest

from tenanttls.errors import InvalidInput
from tenanttls.migration.imports import read_tenant_file

A = "11111111-2222-4333-8444-555555555555"
B = "22222222-2222-4333-8444-555555555555"


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_read(tmp_path):
    path = _write(tmp_path, "t.csv", f"tenant_id,initial_domain,display_name\n{A},contoso.onmicrosoft.com,Contoso\n{B},Fabrikam.onmicrosoft.com,\"Fabrikam, Inc\"\n")

    rows = read_tenant_file(path)

    assert [row.tenant.tenant_id for row in rows] == [A, B]
    assert rows[1].tenant.initial_domain == "fabrikam.onmicrosoft.com"
    assert rows[1].tenant.display_name == "Fabrikam, Inc"
    assert rows[1].line == 3


def test_csv_header_aliases(tmp_path):
    path = _write(tmp_path, "t.csv", f"Tenant Id,Initial Domain\n{A},contoso.onmicrosoft.com\n")

    assert read_tenant_file(path)[0].tenant.display_name == ""


def test_csv_bad_id_names_line(tmp_path):
    path = _write(tmp_path, "t.csv", f"tenant_id,initial_domain\n{A},contoso.onmicrosoft.com\nnot-a-guid,x.onmicrosoft.com\n")

    with pytest.raises(InvalidInput) as error:
        read_tenant_file(path)

    assert "line 3" in str(error.value)
    assert "not-a-guid" in str(error.value)


def test_csv_bad_header(tmp_path):
    path = _write(tmp_path, "t.csv", "name,domain_x\n")

    with pytest.raises(InvalidInput) as error:
        read_tenant_file(path)

    assert "line 1" in str(error.value)
    assert "invalid header" in str(error.value)


def test_csv_not_onmicrosoft(tmp_path):
    path = _write(tmp_path, "t.csv", f"tenant_id,initial_domain\n{A},contoso.com\n")

    with pytest.raises(InvalidInput) as error:
        read_tenant_file(path)

    assert "line 2" in str(error.value)
    assert "onmicrosoft.com" in str(error.value)


def test_csv_duplicate_tenant(tmp_path):
    path = _write(tmp_path, "t.csv", f"tenant_id,initial_domain\n{A},a.onmicrosoft.com\n{A},b.onmicrosoft.com\n")

    with pytest.raises(InvalidInput) as error:
        read_tenant_file(path)

    assert "line 3" in str(error.value)
    assert "first on line 2" in str(error.value)


def test_csv_too_many_fields(tmp_path):
    path = _write(tmp_path, "t.csv", f"tenant_id,initial_domain,display_name\n{A},a.onmicrosoft.com,Fabrikam,Inc\n")

    with pytest.raises(InvalidInput) as error:
        read_tenant_file(path)

    assert "line 2" in str(error.value)


def test_json_read_with_lines(tmp_path):
    text = f'[\n  {{"tenant_id": "{A}", "initial_domain": "a.onmicrosoft.com"}},\n\n  {{"tenantId": "{B}", "initialDomain": "b.onmicrosoft.com", "displayName": "B"}}\n]\n'
    path = _write(tmp_path, "t.json", text)

    rows = read_tenant_file(path)

    assert [row.line for row in rows] == [2, 4]
    assert rows[1].tenant.display_name == "B"


def test_json_bad_item_names_line(tmp_path):
    text = f'{{"tenants": [\n  {{"tenant_id": "{A}", "initial_domain": "a.onmicrosoft.com"}},\n  {{"tenant_id": "{B}", "initial_domain": "bad domain"}}\n]}}\n'
    path = _write(tmp_path, "t.json", text)

    with pytest.raises(InvalidInput) as error:
        read_tenant_file(path)

    assert "line 3" in str(error.value)


def test_json_syntax_error_line(tmp_path):
    path = _write(tmp_path, "t.json", '[\n  {"tenant_id": \n')

    with pytest.raises(InvalidInput) as error:
        read_tenant_file(path)

    assert "line 3" in str(error.value) or "line 2" in str(error.value)
    assert "invalid JSON" in str(error.value)


def test_missing_file(tmp_path):
    with pytest.raises(InvalidInput) as error:
        read_tenant_file(tmp_path / "nope.csv")

    assert "not found" in str(error.value)
