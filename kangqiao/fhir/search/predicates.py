"""Per-type SQL predicates for one search value, against one index-table alias.

The escaping rules (``\\,`` ``\\|`` ``\\$`` ``\\\\``) and the prefix semantics follow the R4
search page; each function returns a boolean SQL expression over the given columns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, and_, false, literal, not_, or_
from sqlalchemy.sql.expression import FromClause

from kangqiao.fhir.outcome import FhirError
from kangqiao.fhir.search import units
from kangqiao.fhir.search.dates import HIGH, LOW, now_utc, parse_range
from kangqiao.fhir.search.index import reference_parts
from kangqiao.fhir.search.normalize import norm_string
from kangqiao.fhir.search.plan import on_sqlite
from kangqiao.security.fieldcrypt import search_codes

Pred = ColumnElement[bool]
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


def bad(param: str, message: str) -> FhirError:
    return FhirError.of(400, "invalid", f"Search parameter '{param}': {message}", param)


def split_escaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` not preceded by a backslash; escapes stay for a later split."""
    parts: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


_UNESCAPE = re.compile(r"\\([\\,|$])")


def unescape(text: str) -> str:
    return _UNESCAPE.sub(r"\1", text)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def split_prefix(param: str, value: str) -> tuple[str, str]:
    if len(value) > 2 and value[:2].isalpha():
        prefix = value[:2]
        if prefix not in PREFIXES:
            raise bad(param, f"unknown prefix '{prefix}' in '{value}'")
        return prefix, value[2:]
    return "eq", value


# ---- string / uri -------------------------------------------------------------------------


def string_pred(t: FromClause, param: str, modifier: str, value: str) -> Pred:
    v = norm_string(unescape(value))
    if modifier == "exact":
        return t.c.value == v
    if modifier == "contains":
        return t.c.value.like(f"%{_like_escape(v)}%", escape="\\")
    if modifier:
        raise bad(param, f"modifier ':{modifier}' is not valid for a string parameter")
    return and_(*prefix_range(t.c.value, v), t.c.value.like(f"{_like_escape(v)}%", escape="\\"))


def prefix_range(col: Any, prefix: str) -> list[Pred]:
    """On SQLite, ``prefix <= col < successor(prefix)``: the index range of the values that
    start with ``prefix`` (indexed values are normalised, so this equals the LIKE, which
    SQLite cannot answer from a BINARY index). Not on PostgreSQL, whose collation may not
    order by code point (there ``varchar_pattern_ops`` serves the LIKE)."""
    last = ord(prefix[-1]) if prefix else 0
    if not prefix or last >= 0x10FFFF or 0xD7FF <= last <= 0xDFFF:
        return []
    upper = prefix[:-1] + chr(last + 1)
    return [on_sqlite(and_(col >= prefix, col < upper))]


def uri_pred(t: FromClause, param: str, modifier: str, value: str) -> Pred:
    v = unescape(value)
    if modifier == "below":
        return t.c.value.like(f"{_like_escape(v)}%", escape="\\")
    if modifier == "above":
        # the indexed uri is a prefix of the search value
        return literal(v).like(t.c.value + "%")
    if modifier:
        raise bad(param, f"modifier ':{modifier}' is not valid for a uri parameter")
    return t.c.value == v


# ---- token --------------------------------------------------------------------------------


def _code_is(col: Any, code: str, blind: str | None) -> Pred:
    # blind: the parameter holds a keyed blind index instead of the value (resident IDs,
    # phone numbers: kangqiao.security.fieldcrypt.token_mode)
    codes = search_codes(code, blind)
    return col == codes[0] if len(codes) == 1 else col.in_(codes)  # type: ignore[no-any-return]


def token_pred(t: FromClause, param: str, modifier: str, value: str, *,
               blind: str | None = None) -> Pred:
    """``modifier`` is "" or "not" here (:not negates the whole EXISTS, not the row)."""
    if modifier == "text":
        v = norm_string(unescape(value))
        return t.c.display.like(f"%{_like_escape(v)}%", escape="\\")
    return token_cond(t.c.system, t.c.code, param, value, blind=blind)


def token_cond(system_col: Any, code_col: Any, param: str, value: str, *,
               blind: str | None = None) -> Pred:
    """``[system]|[code]`` or ``code`` against a system and a code column."""
    parts = split_escaped(value, "|")
    if len(parts) == 1:
        return _code_is(code_col, unescape(parts[0]), blind)
    if len(parts) != 2:
        raise bad(param, f"invalid token '{value}' (expected [system]|[code])")
    system, code = unescape(parts[0]), unescape(parts[1])
    conds = [system_col.is_(None) if system == "" else system_col == system]
    if code:
        conds.append(_code_is(code_col, code, blind))
    return and_(*conds)


# ---- numbers, quantities -------------------------------------------------------------------


def parse_number(param: str, text: str) -> Decimal:
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise bad(param, f"'{text}' is not a number") from None
    if not d.is_finite():
        raise bad(param, f"'{text}' is not a number")
    return d


def number_cond(col: Any, prefix: str, d: Decimal, factor: float = 1.0) -> Pred:
    """Compare a point value column with a search number, using its implicit precision."""
    exp = d.as_tuple().exponent
    half = Decimal(5).scaleb(int(exp) - 1)  # "100" means [99.5, 100.5)
    s, lo, hi = (float(x) * factor for x in (d, d - half, d + half))
    if prefix == "eq":
        return and_(col >= lo, col < hi)
    if prefix == "ne":
        return or_(col < lo, col >= hi)
    if prefix in ("gt", "sa"):
        return col > s  # type: ignore[no-any-return]
    if prefix in ("lt", "eb"):
        return col < s  # type: ignore[no-any-return]
    if prefix == "ge":
        return col >= s  # type: ignore[no-any-return]
    if prefix == "le":
        return col <= s  # type: ignore[no-any-return]
    # ap: within 10% of the value (at least its precision)
    delta = max(abs(s) * 0.1, (hi - lo) / 2)
    return and_(col >= s - delta, col <= s + delta)


def number_pred(t: FromClause, param: str, value: str) -> Pred:
    prefix, rest = split_prefix(param, value)
    return number_cond(t.c.value, prefix, parse_number(param, rest))


def quantity_pred(t: FromClause, param: str, value: str) -> Pred:
    parts = [unescape(p) for p in split_escaped(value, "|")]
    if len(parts) not in (1, 3):
        raise bad(param, f"invalid quantity '{value}' (expected number|system|code)")
    prefix, num = split_prefix(param, parts[0])
    d = parse_number(param, num)
    if len(parts) == 1:
        return number_cond(t.c.value, prefix, d)
    system, code = parts[1] or None, parts[2] or None
    if code is None:
        cond = number_cond(t.c.value, prefix, d)
        return and_(t.c.system == system, cond) if system else cond
    forms = units.query_forms(code, system)
    if forms:  # compare in canonical units: 20 kPa finds 150 mmHg
        return or_(*(and_(t.c.canonical_code == unit, number_cond(t.c.canonical_value, prefix,
                                                                   d, factor))
                     for unit, factor in forms))
    conds = [t.c.code == code, number_cond(t.c.value, prefix, d)]
    if system:
        conds.append(t.c.system == system)
    return and_(*conds)


# ---- dates ----------------------------------------------------------------------------------


def date_cond(lo: Any, hi: Any, prefix: str, sl: datetime, sh: datetime) -> Pred:
    """R4 range comparison: resource range [lo, hi] against search range [sl, sh]."""
    eq = and_(lo >= sl, hi <= sh)
    if prefix == "eq":
        return eq
    if prefix == "ne":
        return not_(eq)
    if prefix == "gt":
        return hi > sh  # type: ignore[no-any-return]
    if prefix == "lt":
        return lo < sl  # type: ignore[no-any-return]
    if prefix == "ge":
        return or_(hi > sh, eq)
    if prefix == "le":
        return or_(lo < sl, eq)
    if prefix == "sa":
        return lo > sh  # type: ignore[no-any-return]
    if prefix == "eb":
        return hi < sl  # type: ignore[no-any-return]
    # ap: overlap with the search range widened by 10% of its distance from now (>= 1 day)
    now = now_utc()
    gap = max(abs(now - sl), abs(now - sh))
    delta = max(gap / 10, timedelta(days=1))
    wide_lo = sl - delta if sl - LOW > delta else LOW
    wide_hi = sh + delta if HIGH - sh > delta else HIGH
    return and_(lo <= wide_hi, hi >= wide_lo)


def parse_date(param: str, value: str) -> tuple[str, datetime, datetime]:
    prefix, rest = split_prefix(param, value)
    r = parse_range(rest)
    if r is None:
        raise bad(param, f"'{rest}' is not a valid date/dateTime")
    return prefix, r[0], r[1]


def date_pred(t: FromClause, param: str, value: str) -> Pred:
    prefix, sl, sh = parse_date(param, value)
    return date_cond(t.c.low, t.c.high, prefix, sl, sh)


def date_floor(param: str, value: str) -> datetime | None:
    """A lower bound on a matching range's ``high`` implied by ``date_cond`` (``high >= low``
    for every range) where the condition itself bounds ``low`` only, or None: ``eq`` and
    ``ge`` (a range wholly inside the searched one, or past it) end at ``sl`` or later, ``sa``
    after ``sh``. ``gt``, ``eb`` and ``ap`` bound ``high`` themselves; ``lt``, ``le``, ``ne``
    leave it open."""
    prefix, sl, sh = parse_date(param, value)
    return sl if prefix in ("eq", "ge") else sh if prefix == "sa" else None


# ---- reference -------------------------------------------------------------------------------


def reference_pred(
    t: FromClause, param: str, modifier: str, value: str, targets: Sequence[str]
) -> Pred:
    """``modifier`` is "" or a resource type (``subject:Patient=123``)."""
    v = unescape(value)
    if "|" in v and v.startswith(("http:", "https:", "urn:")):  # canonical with version
        return or_(t.c.url == v, t.c.url == v.partition("|")[0])
    if "/" not in v and ":" not in v and not v.startswith("#"):  # a bare id
        target_type: str | None = modifier or None
        target_id: str | None = v
        version: str | None = None
    else:
        target_type, target_id, version, ref_url = reference_parts(v)
        if ref_url is not None or target_id is None:
            return t.c.url == ref_url
        if modifier and modifier != target_type:
            return false()
    if target_type and targets and target_type not in targets:
        raise bad(param, f"'{target_type}' is not a valid target of '{param}'")
    conds = [t.c.target_id == target_id]
    if target_type:
        conds.append(t.c.target_type == target_type)
    if version:
        conds.append(or_(t.c.target_version == version, t.c.target_version.is_(None)))
    return and_(*conds)
