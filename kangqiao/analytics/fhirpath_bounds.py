"""``lowBoundary()`` and ``highBoundary()`` (FHIRPath 3.0, experimental in SQL-on-FHIR v2).

* decimal: the value minus / plus half a unit of its last decimal place
  (``1.587`` -> ``1.5865`` / ``1.5875``). A decimal carried without decimals counts as
  having one (``1`` -> ``0.95`` / ``1.05``), as the SQL-on-FHIR suite expects.
* date: the first / last day the partial date covers (``2010-02`` -> ``2010-02-01`` /
  ``2010-02-28``).
* dateTime / instant: filled to milliseconds; without a time zone the earliest
  (``+14:00``) / latest (``-12:00``) offset is assumed.
* time: filled to milliseconds.
* Period: ``start.lowBoundary()`` / ``end.highBoundary()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kangqiao.analytics.dialects import Dialect

if TYPE_CHECKING:
    from kangqiao.analytics.fhirpath_ast import Node
    from kangqiao.analytics.fhirpath_sql import Ctx, Val

_DT = r"^([0-9]{4}(?:-[0-9]{2}(?:-[0-9]{2})?)?)T([0-9]{2}(?::[0-9]{2}(?::[0-9]{2})?)?)(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?$"  # noqa: E501
_TIME = r"^([0-9]{2}(?::[0-9]{2}(?::[0-9]{2})?)?)(\.[0-9]+)?$"


def _date(d: Dialect, s: str, high: bool) -> str:
    if not high:
        return (f"(CASE length({s}) WHEN 4 THEN {s} || '-01-01' "
                f"WHEN 7 THEN {s} || '-01' "
                f"ELSE {s} END)")
    return (f"(CASE length({s}) WHEN 4 THEN {s} || '-12-31' WHEN 7 THEN "
            f"{d.last_day(s)} "
            f"ELSE {s} END)")


def _clock(t: str, frac: str, high: bool) -> str:
    pad, fill = ("59", "9") if high else ("00", "0")
    hms = (f"(CASE length({t}) WHEN 2 THEN {t} || ':{pad}:{pad}' WHEN 5 THEN {t} || ':{pad}' "
           f"ELSE {t} END)")  # fmt: skip
    ms = f"substr(rpad(coalesce(nullif({frac}, ''), '.'), 4, '{fill}'), 1, 4)"
    return f"{hms} || {ms}"


def _datetime(d: Dialect, s: str, high: bool) -> str:
    tz_default = "'-12:00'" if high else "'+14:00'"
    clock = "23:59:59.999" if high else "00:00:00.000"
    if_date = f"{_date(d, s, high)} || 'T{clock}' || {tz_default}"
    g = [f"regexp_extract({s}, {d.lit(_DT)}, {i})" for i in range(1, 5)]
    with_time = (f"{_date(d, g[0], high)} || 'T' || {_clock(g[1], g[2], high)} || "
                 f"coalesce(nullif({g[3]}, ''), {tz_default})")  # fmt: skip
    return (f"(CASE WHEN {s} IS NULL THEN NULL WHEN position('T' IN {s}) = 0 THEN {if_date} "
            f"WHEN {d.find(s, _DT)} THEN {with_time} END)")  # fmt: skip


def _time(d: Dialect, s: str, high: bool) -> str:
    g = [f"regexp_extract({s}, {d.lit(_TIME)}, {i})" for i in (1, 2)]
    return f"(CASE WHEN {d.find(s, _TIME)} THEN {_clock(g[0], g[1], high)} END)"


def _decimal(d: Dialect, x: str, high: bool) -> str:
    text = f"CAST(CAST({x} AS DOUBLE) AS {d.type('str')})"
    digits = f"CAST(greatest(length(split_part({text}, '.', 2)), 1) AS INTEGER)"
    half = f"(0.5 / pow(10, {digits}))"
    sign = "+" if high else "-"
    return d.round_to(f"CAST({x} AS DOUBLE) {sign} {half}", f"{digits} + 1")


class BoundaryMixin:
    """The boundary functions of :class:`kangqiao.analytics.fhirpath_sql.Compiler`."""

    def boundary(self, base: Val, args: tuple[Node, ...], ctx: Ctx, high: bool) -> Val:
        from kangqiao.analytics.fhirpath_sql import CompileError, Val

        comp: Any = self
        name = "highBoundary" if high else "lowBoundary"
        if args:
            raise CompileError(f"{name}() with a precision argument is not supported")
        if base.choice is not None:
            base = comp.resolve_choice(base, None)

        def one(v: Val) -> Val:
            if v.kind == "json" and v.ftype == "Period":
                return one(comp.nav(v, "end" if high else "start", ctx))
            if v.kind in ("num", "int"):
                return Val(_decimal(comp.d, v.sql, high), False, "num")
            s = comp.to_kind(v, "str").sql
            ftype = v.ftype or ""
            if ftype == "date":
                return Val(_date(comp.d, s, high), False, "str", "date")
            if ftype == "time":
                return Val(_time(comp.d, s, high), False, "str", "time")
            if ftype in ("dateTime", "instant"):
                return Val(_datetime(comp.d, s, high), False, "str", "dateTime")
            # unknown type: dates have no 'T', date-times have one
            sql = (f"(CASE WHEN {comp.d.find(s, '^[0-9]{2}:')} THEN {_time(comp.d, s, high)} "
                   f"ELSE {_datetime(comp.d, s, high)} END)")  # fmt: skip
            return Val(sql, False, "str", "dateTime")

        result: Val = comp.map_items(base, ctx, one)
        return result
