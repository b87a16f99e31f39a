"""FHIR date/dateTime/instant values as [low, high] ranges of naive UTC datetimes.

A partial value stands for the whole interval it names (``2024-03`` is all of March), as
the search spec requires; open ends of a Period use datetime.min / datetime.max. Values
without a time zone (dates, and search values without an offset) are taken as UTC so that
indexed and searched values are interpreted the same way.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

LOW = datetime.min
HIGH = datetime.max
_MICRO = timedelta(microseconds=1)

_DATE_RE = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


@lru_cache(maxsize=4096)
def parse_range(text: str) -> tuple[datetime, datetime] | None:
    """The implicit [low, high] range of a FHIR date/dateTime/instant, or None if invalid.

    Memoised: indexing meets the same instants again and again (every observation of an
    encounter carries its time), and parsing one costs ~5 µs."""
    m = _DATE_RE.match(text)
    if m is None:
        return None
    year, month, day, hh, mi, ss, frac, tz = m.groups()
    try:
        y = int(year)
        if month is None:
            return datetime(y, 1, 1), datetime(y, 12, 31, 23, 59, 59, 999999)
        mo = int(month)
        if day is None:
            last = calendar.monthrange(y, mo)[1]
            return datetime(y, mo, 1), datetime(y, mo, last, 23, 59, 59, 999999)
        d = int(day)
        if hh is None:
            return datetime(y, mo, d), datetime(y, mo, d, 23, 59, 59, 999999)
        low = datetime(y, mo, d, int(hh), int(mi), int(ss or 0))
        if ss is None:
            width = timedelta(minutes=1)
        elif frac is None:
            width = timedelta(seconds=1)
        else:
            digits = frac[:6]
            low = low.replace(microsecond=int(digits.ljust(6, "0")))
            width = timedelta(microseconds=10 ** (6 - len(digits)))
    except ValueError:  # 2024-02-30, month 13...
        return None
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        offset = timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
        low = _shift(low, -sign * offset)
    return low, _shift(low, width - _MICRO)


def _shift(value: datetime, delta: timedelta) -> datetime:
    """``value + delta``, clamped to the representable range (year 1 and 9999 edges)."""
    try:
        return value + delta
    except OverflowError:
        return HIGH if delta > timedelta(0) else LOW


def period_range(period: dict[str, Any]) -> tuple[datetime, datetime] | None:
    start, end = period.get("start"), period.get("end")
    if start is None and end is None:
        return None
    low_r = parse_range(start) if isinstance(start, str) else None
    high_r = parse_range(end) if isinstance(end, str) else None
    return (low_r[0] if low_r else LOW), (high_r[1] if high_r else HIGH)


def timing_range(timing: dict[str, Any]) -> tuple[datetime, datetime] | None:
    """Only the outer limits of a Timing matter for search (events and repeat.boundsPeriod)."""
    ranges = [r for e in timing.get("event", ()) if isinstance(e, str) and (r := parse_range(e))]
    bounds = (timing.get("repeat") or {}).get("boundsPeriod")
    if isinstance(bounds, dict) and (r := period_range(bounds)):
        ranges.append(r)
    if not ranges:
        return None
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
