"""The indicator catalogue: one JSON file per indicator in ``kangqiao/analytics/catalogue``.

An indicator is data, not code: a ``units`` query over named view outputs and derived
tables returns one row per counted unit (a managed patient, an encounter, a test, a
referral) with ``patient_id`` and ``period``; ``numerator`` and ``denominator`` are SQL
expressions over that row (booleans count 1, numbers add up); ``value`` feeds a median.
``${name}`` placeholders take the indicator's ``parameters`` (overridable per run).

An ``as_of`` indicator (HEARTS) depends on the reference day D, not only on the period:
it must declare ``as_of_dates``, a ``query`` returning ``(patient_id, day)`` for every
date its state is computed from and the ``months`` k such that the units query compares
those dates only with D - k months (``<``, ``<=``, ``>`` or ``>=``). As D - k months is
monotone in D, when D moves from a to b the comparisons of a date x can only change if
x lies between a - k and b - k months for some k; a patient with no such date keeps the
same units, so a refresh recomputes only the patients with one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from string import Template
from typing import Any

CATALOGUE_DIR = Path(__file__).resolve().parent.parent / "catalogue"
VIEWS_DIR = Path(__file__).resolve().parent.parent / "views"

AGGREGATES = ("ratio", "count", "median")
PERIOD_TYPES = ("year", "month")
STRATA = ("county", "township", "village", "doctor", "sex", "age-band")


class CatalogueError(ValueError):
    """A catalogue file is malformed or a parameter override does not fit it."""


@dataclass(frozen=True)
class Indicator:
    id: str
    name: dict[str, str]
    definition: dict[str, str]
    aggregate: str
    unit: str
    units: str
    numerator: str
    denominator: str | None
    value: str | None
    views: tuple[str, ...]
    derived: tuple[str, ...]
    parameters: dict[str, Any]
    stratifiers: tuple[str, ...]
    period_types: tuple[str, ...]
    as_of: bool  # depends on the reference day (HEARTS): recomputed when that moves
    as_of_dates: str | None  # (patient_id, day) the state depends on, relative to ...
    as_of_months: tuple[int, ...]  # ... the reference day minus these months
    target: dict[str, Any] | None
    source: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def render(self, sql: str, overrides: dict[str, Any] | None = None) -> str:
        """``sql`` with the parameters substituted (overrides win)."""
        params = {**self.parameters, **(overrides or {})}
        try:
            return Template(sql).substitute({k: _sql_literal(v) for k, v in params.items()})
        except (KeyError, ValueError) as exc:
            raise CatalogueError(f"{self.id}: unknown or malformed parameter {exc}") from None

    @property
    def target_value(self) -> float | None:
        return None if self.target is None else float(self.target["value"])


def _sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, dict) and value:
        # A mapping becomes a relation (key, value): per-test windows and the like.
        rows = ", ".join(f"({_sql_literal(str(k))}, {_sql_literal(v)})" for k, v in value.items())
        return f"(SELECT * FROM (VALUES {rows}) AS _m(key, value))"
    raise CatalogueError(f"unsupported parameter value {value!r}")


def _text(value: Any) -> str:
    return "\n".join(value) if isinstance(value, list) else str(value)


_REQUIRED = (
    "id",
    "name",
    "definition",
    "aggregate",
    "unit",
    "units",
    "numerator",
    "views",
    "period_types",
    "source",
)


def parse_indicator(raw: dict[str, Any], where: str = "<dict>") -> Indicator:
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise CatalogueError(f"{where}: missing {', '.join(missing)}")
    for lang_field in ("name", "definition"):
        if not {"zh", "en"} <= set(raw[lang_field]):
            raise CatalogueError(f"{where}: {lang_field} needs zh and en")
    if raw["aggregate"] not in AGGREGATES:
        raise CatalogueError(f"{where}: aggregate must be one of {AGGREGATES}")
    if raw["aggregate"] == "ratio" and not raw.get("denominator"):
        raise CatalogueError(f"{where}: a ratio needs a denominator")
    if raw["aggregate"] == "median" and not raw.get("value"):
        raise CatalogueError(f"{where}: a median needs a value")
    bad = set(raw["period_types"]) - set(PERIOD_TYPES)
    bad |= set(raw.get("stratifiers", STRATA)) - set(STRATA)
    if bad:
        raise CatalogueError(f"{where}: unknown period type or stratifier {sorted(bad)}")
    for view in raw["views"]:
        if not (VIEWS_DIR / f"{view}.json").exists():
            raise CatalogueError(f"{where}: no view {view!r} in {VIEWS_DIR}")
    as_of_dates, as_of_months = _as_of_dates(raw, where)
    den = raw.get("denominator")
    return Indicator(
        id=str(raw["id"]),
        name=dict(raw["name"]),
        definition=dict(raw["definition"]),
        aggregate=raw["aggregate"],
        unit=str(raw["unit"]),
        units=_text(raw["units"]),
        numerator=_text(raw["numerator"]),
        denominator=None if den is None else _text(den),
        value=None if raw.get("value") is None else _text(raw["value"]),
        views=tuple(raw["views"]),
        derived=tuple(raw.get("derived", ())),
        parameters=dict(raw.get("parameters", {})),
        stratifiers=tuple(raw.get("stratifiers", STRATA)),
        period_types=tuple(raw["period_types"]),
        as_of=bool(raw.get("as_of", False)),
        as_of_dates=as_of_dates,
        as_of_months=as_of_months,
        target=raw.get("target"),
        source=dict(raw["source"]),
        raw=raw,
    )


def _as_of_dates(raw: dict[str, Any], where: str) -> tuple[str | None, tuple[int, ...]]:
    """The declared dates of an ``as_of`` indicator (see the module's docstring)."""
    if not raw.get("as_of", False):
        return None, ()
    spec = raw.get("as_of_dates")
    months = spec.get("months") if isinstance(spec, dict) else None
    if (
        not isinstance(spec, dict)
        or not spec.get("query")
        or not isinstance(months, list)
        or not months
        or not all(isinstance(m, int) and not isinstance(m, bool) and m >= 0 for m in months)
    ):
        raise CatalogueError(
            f"{where}: an as_of indicator needs as_of_dates: a query and months (integers >= 0)"
        )
    return _text(spec["query"]), tuple(sorted(set(months)))


@cache
def load_catalogue(directory: Path = CATALOGUE_DIR) -> tuple[Indicator, ...]:
    """Every indicator in ``directory``, sorted by id; ids must match file names."""
    out = []
    for path in sorted(directory.glob("*.json")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        ind = parse_indicator(raw, path.name)
        if ind.id != path.stem:
            raise CatalogueError(f"{path.name}: id {ind.id!r} differs from the file name")
        out.append(ind)
    return tuple(out)


@cache
def load_views() -> dict[str, dict[str, Any]]:
    """The ViewDefinitions the catalogue runs, by name."""
    views = {}
    for path in sorted(VIEWS_DIR.glob("*.json")):
        view = json.loads(path.read_text(encoding="utf-8"))
        views[str(view["name"])] = view
    return views


_NAME = re.compile(r"\b(?:FROM|JOIN)\s+([a-z_]+)\b", re.IGNORECASE)
# ``WITH lab AS (`` / ``, more AS (``: names the query defines for itself
_CTE = re.compile(r"(?:\bWITH|,)\s+([a-z_]+)\s+AS\s*\(", re.IGNORECASE)


def tables_read(indicator: Indicator) -> set[str]:
    """Relation names the units and as_of dates queries read (for the catalogue's
    consistency test)."""
    sql = indicator.units + "\n" + (indicator.as_of_dates or "")
    own = {m.group(1) for m in _CTE.finditer(sql)}
    return {m.group(1) for m in _NAME.finditer(sql)} - {"periods"} - own
