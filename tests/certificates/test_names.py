from __future__ import annotations

import re

import pytest

from tenanttls.certificates.names import LABEL_LENGTH, new_label, unique_name, validate_label
from tenanttls.errors import InvalidInput


def test_new_label_is_lower_base32():
    label = new_label()

    assert len(label) == LABEL_LENGTH
    assert re.fullmatch(r"[a-z2-7]{26}", label)


def test_new_labels_differ():
    labels = {new_label() for _ in range(1000)}

    assert len(labels) == 1000


def test_unique_name_joins_label_and_zone():
    assert unique_name("ABCdef", "CrosswareTLS.com.") == "abcdef.crosswaretls.com"


def test_label_over_63_characters_rejected():
    with pytest.raises(InvalidInput, match="64 characters, the maximum is 63"):
        validate_label("a" * 64)


def test_label_with_dot_rejected():
    with pytest.raises(InvalidInput, match="invalid label 'a.b'"):
        unique_name("a.b", "crosswaretls.com")


def test_invalid_zone_rejected():
    with pytest.raises(InvalidInput, match="invalid provider zone"):
        unique_name("abc", "not a zone")
