"""Dates as PowerShell writes them in exports.

``ConvertTo-Json`` writes a DateTime as ``/Date(1700000000000)/`` (Windows PowerShell
5.1, milliseconds since 1970 UTC, sometimes with a ``+0100`` offset suffix) or as ISO
8601 (PowerShell 7). ``Format-List`` writes it in the admin's culture:
``14.11.2023 22:13:20`` (de-DE), ``11/14/2023 10:13:20 PM`` (en-US),
``14/11/2023 22:13:20`` (en-GB), ``2023/11/14 22:13:20`` (ja-JP) and so on.

Day and month are ambiguous in the culture forms when both are 12 or less. The
order is decided once per file (`DateOrder`) from the dates that are not ambiguous.
"""

from __future__ import annotations

import enum
import re
from datetime import datetime, timedelta, timezone

_MICROSOFT_JSON_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")

# Numbers, one separator, then a time with optional seconds, fraction and AM/PM designator.
_CULTURE_DATE = re.compile(
    r"^(?P<a>\d{1,4})(?P<sep>[./-])(?P<b>\d{1,2})(?P=sep)(?P<c>\d{1,4})\.?"
    r"(?:[ T]+(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d{1,7}))?)?"
    r"\s*(?P<designator>AM|PM|A\.M\.|P\.M\.|a\.m\.|p\.m\.|am|pm)?)?$"
)


class DateOrder(enum.Enum):
    """How to read ``a/b/yyyy`` dates: day first or month first."""

    DAY_FIRST = "dmy"
    MONTH_FIRST = "mdy"


class DateFormatError(ValueError):
    """A text is not a date in any form PowerShell writes."""


def parse_json_date(value: str) -> datetime:
    """Return the moment of a ConvertTo-Json date (``/Date(ms)/`` or ISO 8601), timezone-aware."""
    match = _MICROSOFT_JSON_DATE.match(value.strip())
    if match:
        moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=int(match.group(1)))
        return moment
    return _parse_iso(value)


def _parse_iso(value: str) -> datetime:
    text = value.strip().replace("Z", "+00:00")

    # Python 3.11 reads at most 6 fraction digits; .NET writes 7 ("o" format).
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise DateFormatError(f"not a date: {value!r}") from error
    return moment


def looks_like_date(value: str) -> bool:
    """Return True when `value` has the shape of one of the date forms read here."""
    text = value.strip()
    return bool(_MICROSOFT_JSON_DATE.match(text) or _CULTURE_DATE.match(text) or _is_iso(text))


def _is_iso(text: str) -> bool:
    try:
        _parse_iso(text)
    except DateFormatError:
        return False
    return True


def infer_date_order(values: list[str]) -> DateOrder | None:
    """Return the day/month order that fits every culture date in `values`.

    Returns None when no value decides it (every ``a`` and ``b`` is 12 or less, or
    the dates are year-first). Raises `DateFormatError` when the values contradict
    each other, which means they come from two cultures.
    """
    day_first = month_first = False
    for value in values:
        match = _CULTURE_DATE.match(value.strip())
        if not match or len(match.group("a")) == 4:
            continue
        first, second = int(match.group("a")), int(match.group("b"))
        day_first = day_first or first > 12
        month_first = month_first or second > 12

    if day_first and month_first:
        raise DateFormatError("the dates mix day-first and month-first forms; export them again from one session")
    if day_first:
        return DateOrder.DAY_FIRST
    if month_first:
        return DateOrder.MONTH_FIRST
    return None


def default_date_order(values: list[str]) -> DateOrder:
    """Return the usual order for dates that `infer_date_order` left undecided.

    Cultures that write dots or dashes (de-DE, ru-RU, nl-NL) put the day first. With
    slashes, en-US writes an AM/PM designator and the month first, while en-GB and
    fr-FR write a 24-hour time and the day first.
    """
    return default_date_order_with_reason(values)[0]


def default_date_order_with_reason(values: list[str]) -> tuple[DateOrder, str]:
    """Return `default_date_order` and the reason for it, in words for a report's note."""
    separators = set()
    for value in values:
        match = _CULTURE_DATE.match(value.strip())
        if not match:
            continue
        if match.group("sep") == "/" and match.group("designator"):
            return DateOrder.MONTH_FIRST, "they have slashes and AM/PM, as en-US writes dates, month first"
        separators.add(match.group("sep"))

    if "/" in separators:
        return DateOrder.DAY_FIRST, "they have slashes and a 24-hour time, as en-GB and fr-FR write dates, day first"
    return DateOrder.DAY_FIRST, "they have dots or dashes, as de-DE, ru-RU and nl-NL write dates, day first"


def parse_culture_date(value: str, order: DateOrder) -> datetime:
    """Return the date and time of a Format-List date, without a timezone (the text has none)."""
    text = value.strip()
    match = _CULTURE_DATE.match(text)
    if not match:
        return _parse_iso(text)

    year, month, day = _date_parts(match, order)
    hour = int(match.group("hour") or 0)
    designator = (match.group("designator") or "").replace(".", "").upper()
    if designator == "PM" and hour < 12:
        hour += 12
    if designator == "AM" and hour == 12:
        hour = 0

    fraction = (match.group("fraction") or "").ljust(6, "0")[:6]
    try:
        return datetime(
            year,
            month,
            day,
            hour,
            int(match.group("minute") or 0),
            int(match.group("second") or 0),
            int(fraction or 0),
        )
    except ValueError as error:
        raise DateFormatError(f"not a date: {value!r} ({error})") from error


def _date_parts(match: re.Match[str], order: DateOrder) -> tuple[int, int, int]:
    a, b, c = match.group("a"), match.group("b"), match.group("c")
    if len(a) == 4:
        return int(a), int(b), int(c)
    if len(c) != 4:
        raise DateFormatError(f"not a date: {match.string!r} (expected a four-digit year)")
    if order is DateOrder.DAY_FIRST:
        return int(c), int(b), int(a)
    return int(c), int(a), int(b)
