from __future__ import annotations

import re

import pytest

from tenanttls.errors import InvalidInput
from tenanttls.manual.quoting import quote_identifier, quote_string, quote_value, render_assignment

from tests.manual.conftest import HOSTILE
from tests.manual.psreader import SINGLE_QUOTES, read_values


def _round_trip(value):
    script = f"# ---- Values for this tenant, written by tenanttls (quoted literals; do not edit) ----\n" \
        f"{render_assignment('Value', value)}\n# ---- End of values ----\n"
    return read_values(script)["Value"]


def test_plain_text():
    assert quote_string("NorthwindInboundConnector") == "'NorthwindInboundConnector'"


def test_single_quote_doubled():
    assert quote_string("O'Brien") == "'O''Brien'"


def test_expansion_characters_kept_literal():
    assert quote_string("$(Stop-Computer) `n $x") == "'$(Stop-Computer) `n $x'"


def test_line_break_as_char_code():
    assert quote_string("a\nb") == "('a' + [char]0x000A + 'b')"


def test_leading_char_code_starts_with_string():
    assert quote_string("\u2019x") == "('' + [char]0x2019 + 'x')"


def test_empty_string():
    assert quote_string("") == "''"


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_value_round_trip(value):
    assert _round_trip(value) == value


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_value_ascii_one_line(value):
    quoted = quote_string(value)

    assert quoted.isascii()
    assert "\n" not in quoted
    assert not any(quote in quoted for quote in SINGLE_QUOTES[1:])


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_value_inside_quotes(value):
    # Outside the quotes there may only be '(', ')', '+', spaces and [char] codes.
    quoted = quote_string(value)
    outside = []
    inside = False
    index = 0
    while index < len(quoted):
        character = quoted[index]
        if character == "'":
            if inside and quoted[index + 1 : index + 2] == "'":
                index += 2
                continue
            inside = not inside
        elif not inside:
            outside.append(character)
        index += 1

    residue = "".join(outside)
    for code in re.findall(r"\[char\]0x[0-9A-F]{4}", residue):
        residue = residue.replace(code, "", 1)
    assert set(residue) <= set("()+ ")


def test_values_of_other_types():
    assert quote_value(True) == "$true"
    assert quote_value(False) == "$false"
    assert quote_value(None) == "$null"
    assert quote_value(120) == "120"
    assert quote_value(["*", "it's"]) == "@('*', 'it''s')"


def test_list_round_trip():
    assert _round_trip(["a'b", "c\nd", ""]) == ["a'b", "c\nd", ""]


def test_hashtable_round_trip():
    table = {"Name": "x'y", "Enabled": True, "SenderDomains": ["*"], "Comment": "a\nb"}

    assert _round_trip(table) == table


def test_unsupported_value():
    with pytest.raises(InvalidInput):
        quote_value(1.5)


@pytest.mark.parametrize("name", ["", "a b", "a;b", "$x", "x=1", "Name\n"])
def test_identifier_rejected(name):
    with pytest.raises(InvalidInput):
        quote_identifier(name)
