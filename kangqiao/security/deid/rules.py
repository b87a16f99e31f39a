"""De-identification rules as pure functions (no I/O): keyed pseudonyms and date shifts,
removal of direct identifiers, generalisation of quasi-identifiers and k-anonymity by full
domain generalisation with suppression, small cells of aggregates.

The approach follows the usual practice for health data (HIPAA Safe Harbor's list of direct
identifiers, ISO/TS 25237 pseudonymisation, GB/T 37964-2019 去标识化指南): direct identifiers
are removed, record linkage inside the extract is kept through keyed pseudonyms, dates move by
one secret offset per patient (intervals within a patient stay exact), and the
quasi-identifiers left (age, sex, area) are generalised until every combination is shared by at
least k patients; patients that would still stand out are suppressed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import product
from typing import Any

from kangqiao.analytics.indicators.aggregate import is_suppressed

Json = dict[str, Any]
MAX_SHIFT_DAYS = 182

# ---- pseudonyms and date shifts ------------------------------------------------------------


def pseudonym(key: bytes, resource_type: str, resource_id: str) -> str:
    """The id of ``resource_type/resource_id`` in the extract: the same in every resource
    and every run with the same key, unlinkable to the real id without it."""
    mac = hmac.new(key, f"id|{resource_type}/{resource_id}".encode(), hashlib.sha256)
    return mac.hexdigest()[:24]


def shift_days(key: bytes, patient_id: str) -> int:
    """This patient's date offset: within ±182 days, never 0."""
    mac = hmac.new(key, f"shift|{patient_id}".encode(), hashlib.sha256).digest()
    n = int.from_bytes(mac[:8], "big") % (2 * MAX_SHIFT_DAYS)
    return n - MAX_SHIFT_DAYS if n < MAX_SHIFT_DAYS else n - MAX_SHIFT_DAYS + 1


_FULL_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(T.*)?$")
_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?$")


def shift_date(value: str, days: int, *, partial: bool = False) -> str:
    """A FHIR date, dateTime or instant moved by ``days`` at its own precision (the time of
    day and the zone are kept). ``partial``: also year and year-month values (moved by their
    first day). Anything else is returned unchanged."""
    m = _FULL_DATE.match(value)
    if m:
        try:
            moved = date(int(m[1]), int(m[2]), int(m[3])) + timedelta(days=days)
        except ValueError:
            return value
        return moved.isoformat() + (m[4] or "")
    m = _PARTIAL_DATE.match(value) if partial else None
    if m:
        moved = date(int(m[1]), int(m[2] or 1), 1) + timedelta(days=days)
        return f"{moved.year:04d}" if m[2] is None else f"{moved.year:04d}-{moved.month:02d}"
    return value


# ---- direct identifiers --------------------------------------------------------------------

# Keys removed wherever they occur: identifiers, names and contact details, pictures, free
# text (notes, narrative, comments, typed answers, message bodies), the record's metadata
# (lastUpdated would reveal the real dates).
DROP_KEYS = frozenset({
    "identifier", "name", "telecom", "address", "photo", "contact", "note", "comment",
    "patientInstruction", "valueString", "contentString", "contentAttachment", "display",
    "meta", "text", "description", "presentedForm", "valueAttachment", "data",
})
DATE_KEY_HINTS = ("Date", "DateTime", "date", "Instant")
DATE_KEYS = frozenset({"start", "end", "issued", "recorded", "created", "sent", "received",
                       "authoredOn", "lastModified", "timestamp", "event"})


def _is_date_key(key: str) -> bool:
    return key in DATE_KEYS or key.endswith(DATE_KEY_HINTS)


@dataclass(frozen=True)
class Scrubber:
    """Removes direct identifiers from one resource and rewrites its references and dates.
    ``kept_types``: types in the extract (references to them become pseudonyms; references
    to anything else, such as institutions and staff, are removed: they would be
    quasi-identifiers finer than the generalised area)."""

    key: bytes
    kept_types: frozenset[str]

    def scrub(self, resource: Json, days: int) -> Json:
        rtype = str(resource["resourceType"])
        out = self._value(resource, days, "")
        assert isinstance(out, dict)
        out["resourceType"] = rtype
        out["id"] = pseudonym(self.key, rtype, str(resource.get("id")))
        out.pop("contained", None)
        return out

    def _value(self, value: Any, days: int, key: str) -> Any:
        if type(value) is dict:
            if "reference" in value or ("identifier" in value and key != ""):
                return self._reference(value)
            out = {}
            for k, v in value.items():
                if k in DROP_KEYS:
                    continue
                new = self._value(v, days, k)
                if new is not None and new != [] and new != {}:
                    out[k] = new
            return out
        if type(value) is list:
            items = [self._value(v, days, key) for v in value]
            return [i for i in items if i is not None and i != {}]
        if type(value) is str:
            return shift_date(value, days, partial=_is_date_key(key))
        return value

    def _reference(self, ref: Json) -> Json | None:
        target = ref.get("reference")
        if type(target) is not str or target.count("/") != 1:
            return None  # logical (identifier) or absolute references: nothing to keep
        rtype, rid = target.split("/")
        if rtype not in self.kept_types:
            return None
        return {"reference": f"{rtype}/{pseudonym(self.key, rtype, rid)}"}


# ---- quasi-identifiers ---------------------------------------------------------------------

AGE_WIDTHS = (5, 10, 20, None)  # level -> band width (None: suppressed to "*")
AREA_DIGITS = (9, 6, 0)  # level -> digits of the division code kept (township, county, none)
SEX_LEVELS = 2  # 0: gender as recorded, 1: "*"
TOP_AGE = 90  # 90 and over form one band at every level


def age_on(birth: str | None, on: date) -> int | None:
    if not birth or not re.match(r"^\d{4}", birth):
        return None
    year = int(birth[:4])
    month, day = (int(birth[5:7]), int(birth[8:10])) if len(birth) >= 10 else (7, 1)
    return on.year - year - ((on.month, on.day) < (month, day))


def age_band(age: int | None, level: int) -> str:
    width = AGE_WIDTHS[level]
    if age is None or width is None:
        return "*"
    if age >= TOP_AGE:
        return f"{TOP_AGE}+"
    low = age // width * width
    return f"{low}-{min(low + width, TOP_AGE) - 1}"


def area(code: str | None, level: int) -> str:
    digits = AREA_DIGITS[level]
    if not code or digits == 0 or len(code) < digits:
        return "*"
    return code[:digits]


@dataclass(frozen=True, slots=True)
class Quasi:
    """A patient's quasi-identifiers at full detail."""

    age: int | None
    sex: str | None
    area_code: str | None


Level = tuple[int, int, int]  # (age, sex, area) generalisation levels


def generalised(q: Quasi, level: Level) -> tuple[str, str, str]:
    age_level, sex_level, area_level = level
    sex = (q.sex or "unknown") if sex_level == 0 else "*"
    return age_band(q.age, age_level), sex, area(q.area_code, area_level)


def _loss(level: Level) -> float:
    # each attribute's share of its hierarchy's height; sex counts double (rarely worth losing)
    return (level[0] / (len(AGE_WIDTHS) - 1) + 2 * level[1] / (SEX_LEVELS - 1)
            + level[2] / (len(AREA_DIGITS) - 1))


@dataclass(frozen=True)
class Anonymisation:
    level: Level
    classes: dict[tuple[str, str, str], int]  # generalised quasi-identifiers -> patients
    suppressed: frozenset[str]  # patient ids left out

    @property
    def k(self) -> int:
        return min(self.classes.values()) if self.classes else 0


def k_anonymise(patients: dict[str, Quasi], k: int, max_suppressed: float = 0.01
                ) -> Anonymisation:
    """The least generalisation (over every combination of the hierarchies' levels) at
    which at most ``max_suppressed`` of the patients are in groups smaller than ``k``; those
    are suppressed, so that every group left has at least ``k`` patients."""
    if k < 1:
        raise ValueError("k must be at least 1")
    budget = int(len(patients) * max_suppressed)
    best: tuple[float, int, Level, Counter[tuple[str, str, str]]] | None = None
    for level in product(range(len(AGE_WIDTHS)), range(SEX_LEVELS), range(len(AREA_DIGITS))):
        counts = Counter(generalised(q, level) for q in patients.values())
        small = sum(n for n in counts.values() if n < k)
        if small > budget and level != (len(AGE_WIDTHS) - 1, SEX_LEVELS - 1,
                                        len(AREA_DIGITS) - 1):
            continue
        candidate = (_loss(level), small, level, counts)
        if best is None or candidate[:2] < best[:2]:
            best = candidate
    assert best is not None
    _, _, level, counts = best
    suppressed = frozenset(pid for pid, q in patients.items()
                           if counts[generalised(q, level)] < k)
    classes = {c: n for c, n in counts.items() if n >= k}
    return Anonymisation(level, classes, suppressed)


def k_of(rows: Iterable[Sequence[str]]) -> int:
    """The k that a table of quasi-identifier tuples achieves (its smallest group)."""
    counts = Counter(tuple(r) for r in rows)
    return min(counts.values()) if counts else 0


# ---- aggregates ----------------------------------------------------------------------------


def cell(count: int, below: int) -> int | None:
    """An aggregate count as published: None (suppressed) when it is a small cell (the same
    rule as the indicators: kangqiao.analytics.indicators.aggregate.is_suppressed)."""
    return None if is_suppressed(count, None, below) else count
