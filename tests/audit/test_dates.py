from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tenanttls.audit.dates import (
    DateFormatError,
    DateOrder,
    default_date_order,
    infer_date_order,
    parse_culture_date,
    parse_json_date,
)


def test_json_date_milliseconds():
    assert parse_json_date("/Date(1700000000000)/") == datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)


def test_json_date_with_offset_suffix():
    # The suffix is the writer's offset; the milliseconds are UTC already.
    assert parse_json_date("/Date(1700000000000+0100)/") == datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)


def test_json_date_iso_seven_digits():
    moment = parse_json_date("2023-11-14T22:13:20.1234567Z")
    assert moment == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=timezone.utc)


def test_json_date_rejects_text():
    with pytest.raises(DateFormatError):
        parse_json_date("yesterday")


@pytest.mark.parametrize(
    ("text", "order", "expected"),
    [
        ("14.11.2023 22:13:20", DateOrder.DAY_FIRST, datetime(2023, 11, 14, 22, 13, 20)),
        ("11/14/2023 10:13:20 PM", DateOrder.MONTH_FIRST, datetime(2023, 11, 14, 22, 13, 20)),
        ("11/14/2023 12:05:00 AM", DateOrder.MONTH_FIRST, datetime(2023, 11, 14, 0, 5, 0)),
        ("14/11/2023 22:13:20", DateOrder.DAY_FIRST, datetime(2023, 11, 14, 22, 13, 20)),
        ("14-11-2023 22:13:20", DateOrder.DAY_FIRST, datetime(2023, 11, 14, 22, 13, 20)),
        ("2023/11/14 22:13:20", DateOrder.MONTH_FIRST, datetime(2023, 11, 14, 22, 13, 20)),
        ("2023-11-14 22:13:20", DateOrder.DAY_FIRST, datetime(2023, 11, 14, 22, 13, 20)),
        ("3.4.2021 9:12", DateOrder.DAY_FIRST, datetime(2021, 4, 3, 9, 12, 0)),
    ],
)
def test_culture_date_forms(text, order, expected):
    assert parse_culture_date(text, order) == expected


def test_culture_date_invalid_day():
    with pytest.raises(DateFormatError):
        parse_culture_date("31.02.2023 10:00:00", DateOrder.DAY_FIRST)


def test_order_from_day_above_twelve():
    assert infer_date_order(["3/4/2021 10:00:00", "14/4/2021 10:00:00"]) is DateOrder.DAY_FIRST


def test_order_from_month_position():
    assert infer_date_order(["4/14/2021 10:00:00 AM"]) is DateOrder.MONTH_FIRST


def test_order_undecided():
    assert infer_date_order(["3/4/2021 10:00:00"]) is None


def test_order_contradiction():
    with pytest.raises(DateFormatError):
        infer_date_order(["14/4/2021 10:00:00", "4/14/2021 10:00:00"])


def test_default_order_designator():
    assert default_date_order(["3/4/2021 10:00:00 AM"]) is DateOrder.MONTH_FIRST


def test_default_order_dots():
    assert default_date_order(["03.04.2021 10:00:00"]) is DateOrder.DAY_FIRST
