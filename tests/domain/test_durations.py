from datetime import timedelta

import pytest

from tenanttls.domain.durations import format_duration, parse_duration
from tenanttls.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", timedelta(hours=24)),
        ("5s", timedelta(seconds=5)),
        ("1h30m", timedelta(minutes=90)),
        ("1d12h", timedelta(hours=36)),
        ("250ms", timedelta(milliseconds=250)),
        ("90", timedelta(seconds=90)),
        ("0", timedelta(0)),
    ],
)
def test_parse_duration_forms(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "h", "5x", "-5s", "5s garbage", "1.2.3s"])
def test_parse_duration_rejects(text):
    with pytest.raises(InvalidInput, match="invalid duration"):
        parse_duration(text)


def test_format_duration_round_trips():
    for delta in (timedelta(hours=24), timedelta(minutes=90), timedelta(seconds=5), timedelta(days=2, seconds=1)):
        assert parse_duration(format_duration(delta)) == delta


def test_parse_duration_negative_named():
    with pytest.raises(InvalidInput, match="a duration cannot be negative"):
        parse_duration("-1m")
