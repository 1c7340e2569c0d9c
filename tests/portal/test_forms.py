"""Form and query validation: cleaned values, and messages that name the field and the fix."""

from __future__ import annotations

import pytest
from starlette.datastructures import FormData, UploadFile

from tenanttls.portal import forms


def test_text_strips_and_accepts_limit():
    assert forms.text({"note": "  hello  "}, "note", label="Note", max_length=5) == "hello"


def test_text_too_long_names_length():
    with pytest.raises(forms.FormError) as caught:
        forms.text({"note": "x" * 11}, "note", label="Note", max_length=10)
    assert caught.value.errors == {"note": "Note is 11 characters long; the maximum is 10"}


def test_text_required_missing():
    with pytest.raises(forms.FormError) as caught:
        forms.text({}, "reason", label="Reason", max_length=10, required=True)
    assert caught.value.errors["reason"] == "Reason is required"


def test_text_control_characters():
    with pytest.raises(forms.FormError) as caught:
        forms.text({"q": "a\x00b"}, "q", label="Search", max_length=10)
    assert "control characters" in caught.value.errors["q"]


def test_text_multiline_keeps_newlines_as_lf():
    assert forms.text({"note": "a\r\nb\rc\nd"}, "note", label="Note", max_length=10, multiline=True) == "a\nb\nc\nd"


def test_text_counts_crlf_as_one():
    note = ("x" * 98 + "\r\n") * 20 + "y" * 20
    assert len(note) == 2020
    assert len(forms.text({"note": note}, "note", label="Note", max_length=2000, multiline=True)) == 2000


def test_text_too_long_multiline_counts_as_typed():
    note = ("x" * 98 + "\r\n") * 20 + "y" * 21
    with pytest.raises(forms.FormError) as caught:
        forms.text({"note": note}, "note", label="Note", max_length=2000, multiline=True)
    assert caught.value.errors["note"] == "Note is 2,001 characters long, counting each line break as one; the maximum is 2,000"


def test_text_rejects_file_upload():
    import io

    form = FormData([("note", UploadFile(io.BytesIO(b"x"), filename="x.txt"))])
    with pytest.raises(forms.FormError) as caught:
        forms.text(form, "note", label="Note", max_length=10)
    assert caught.value.errors["note"] == "must be text, not a file"


def test_text_rejects_repeated_field():
    form = FormData([("note", "a"), ("note", "b")])
    with pytest.raises(forms.FormError) as caught:
        forms.text(form, "note", label="Note", max_length=10)
    assert "more than once" in caught.value.errors["note"]


@pytest.mark.parametrize("value", ["it@contoso.com", "first.last+tag@mail.contoso.co.nz"])
def test_email_valid(value):
    assert forms.email({"e": value}, "e", label="E-mail") == value


@pytest.mark.parametrize("value", ["contoso.com", "a@b", "a b@contoso.com", "@contoso.com"])
def test_email_invalid(value):
    with pytest.raises(forms.FormError) as caught:
        forms.email({"e": value}, "e", label="E-mail")
    assert "is not an e-mail address" in caught.value.errors["e"]


def test_confirmed_needs_yes():
    assert forms.confirmed({"confirm": "yes"}, "confirm", label="Roll back") is True
    with pytest.raises(forms.FormError) as caught:
        forms.confirmed({}, "confirm", label="Roll back")
    assert caught.value.errors["confirm"] == "Tick \u201cRoll back\u201d to confirm"


def test_hex_digest_rejects_other_text():
    with pytest.raises(forms.FormError):
        forms.hex_digest({"plan": "z" * 64}, "plan", label="Plan")
    assert forms.hex_digest({"plan": "a" * 64}, "plan", label="Plan") == "a" * 64


def test_choice_unknown_value_lists_choices():
    with pytest.raises(forms.FormError) as caught:
        forms.choice({"state": "bogus"}, "state", label="State", choices=("grace", "manual"))
    assert caught.value.errors["state"] == "State 'bogus' is not one of: grace, manual"
    assert forms.choice({"state": ""}, "state", label="State", choices=("grace",)) is None


def test_search_lowercases_and_limits_characters():
    assert forms.search({"q": "Contoso.Onmicrosoft"}, "q", label="Search") == "contoso.onmicrosoft"
    with pytest.raises(forms.FormError):
        forms.search({"q": "a'; drop"}, "q", label="Search")


def test_domain_cursor_validates_name():
    assert forms.domain_cursor({"after": "Contoso.onmicrosoft.com"}, "after") == "contoso.onmicrosoft.com"
    with pytest.raises(forms.FormError):
        forms.domain_cursor({"after": "not a domain"}, "after")


def test_integer_range():
    assert forms.integer({}, "size", label="Page size", minimum=1, maximum=200, default=50) == 50
    assert forms.integer({"size": "10"}, "size", label="Page size", minimum=1, maximum=200, default=50) == 10
    with pytest.raises(forms.FormError) as caught:
        forms.integer({"size": "201"}, "size", label="Page size", minimum=1, maximum=200, default=50)
    assert caught.value.errors["size"] == "Page size must be a whole number from 1 to 200"
