"""The county indicator dashboard (issue 7), for the health commission and public health:
every catalogue indicator, drilled down county -> township -> village -> doctor (a bar or a
row leads one level down, the breadcrumb back up), the target on every chart, trends over
months and years, the ranking of the level below, a map of the townships, and the shown
table as CSV or Excel (small cells suppressed: :mod:`.dashboard_export`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kangqiao.analytics.indicators import Indicator
from kangqiao.web import dashboard_charts as dc
from kangqiao.web.dashboard_access import Target, indicators, target_of
from kangqiao.web.dashboard_data import Snapshot, Unit
from kangqiao.web.workbench_charts import Chart

DEFAULT_INDICATOR = "nbphs-htn-bp-control"
BELOW = {"county": "township", "township": "village", "village": "doctor"}
Url = Callable[..., str]


@dataclass(frozen=True)
class Choice:
    indicator: Indicator
    unit: Unit
    period: str


@dataclass(frozen=True)
class Line:
    """One row of the ranking (and of the exports)."""

    rank: int
    unit: Unit
    numerator: float | None
    denominator: float | None
    rate: float | None  # display units: % for ratios
    met: bool | None
    href: str | None


def choose(snap: Snapshot, params: dict[str, str]) -> Choice | str:
    """What the query asks for, or the message key of what is wrong with it."""
    catalogue = indicators()
    ind = catalogue.get(params.get("indicator") or DEFAULT_INDICATOR)
    if ind is None:
        return "db_bad_indicator"
    unit = snap.units.get(params.get("unit") or "county")
    if unit is None:
        return "db_bad_unit"
    periods = periods_of(snap, ind)
    period = params.get("period") or (periods[0] if periods else "")
    if period not in periods:
        return "db_bad_period"
    return Choice(ind, unit, period)


def periods_of(snap: Snapshot, ind: Indicator) -> list[str]:
    """Newest first: the years, then the months when the indicator has monthly values."""
    years = [str(y) for y in sorted(snap.years, reverse=True)]
    months = sorted(snap.months, reverse=True) if "month" in ind.period_types else []
    return years + months


def _is_month(period: str) -> bool:
    return len(period) == 7


def lines_of(snap: Snapshot, choice: Choice, url: Url) -> list[Line]:
    """The level below the chosen unit, best first (empty cells last)."""
    ind, target = choice.indicator, target_of(choice.indicator)
    found = []
    level = BELOW.get(choice.unit.level)
    for kid in snap.kids(choice.unit.id):
        if kid.level != level:
            continue
        row = snap.row(ind.id, choice.period, kid.id) or {}
        rate = dc.scale(row.get("rate") if ind.aggregate != "count" else row.get("numerator"),
                        ind.aggregate if ind.aggregate != "count" else "count")
        if not row:
            continue  # nobody of this unit is counted by this indicator
        met = None if target is None else target.met(row.get("rate"))
        href = None if kid.level == "doctor" else url(
            "/dashboard/county", indicator=ind.id, unit=kid.id, period=choice.period)
        found.append((kid, row.get("numerator"), row.get("denominator"), rate, met, href))
    better_low = target is not None and target.direction == "<"
    found.sort(key=lambda f: (f[3] is None, (f[3] or 0) if better_low else -(f[3] or 0),
                              f[0].name))
    return [Line(i + 1, *f) for i, f in enumerate(found)]


def value_of(snap: Snapshot, ind: Indicator, period: str, unit: str) -> float | None:
    row = snap.row(ind.id, period, unit)
    if row is None:
        return None
    if ind.aggregate == "count":
        return dc.scale(row.get("numerator"), "count")
    return dc.scale(row.get("rate"), ind.aggregate)


def charts(snap: Snapshot, choice: Choice, lines: list[Line], t: Callable[[str], str],
           en: bool) -> dict[str, Chart]:
    ind, unit, period = choice.indicator, choice.unit, choice.period
    target, name = target_of(ind), ind.name["en" if en else "zh"]
    shown_unit = ind.unit if ind.unit == "%" else t("db_unit_" + ind.unit)
    county_value = value_of(snap, ind, period, "county")
    reference = (t("db_county_value"), county_value)
    out: dict[str, Chart] = {}
    level_name = t("db_level_" + BELOW.get(unit.level, "doctor"))
    out["ranking"] = dc.ranking(
        f"{name} · {level_name}{t('db_ranking')} · {period}",
        [dc.Bar(x.unit.name, x.rate, x.href, _detail(x)) for x in lines], shown_unit,
        target, reference, ind.aggregate, en,
        [t("db_rank"), t("db_name"), t("db_value"), t("db_num_den")])
    if "month" in ind.period_types and snap.months:
        months = snap.months
        values = [value_of(snap, ind, m, unit.id) for m in months]
        series = [(unit.name, values, dc.BLUE)]
        if unit.id != "county":
            series.append((t("db_county_value"),
                           [value_of(snap, ind, m, "county") for m in months], dc.GREY))
        out["months"] = dc.trend(f"{name} · {unit.name} · {t('db_monthly')}", months, series,
                                 shown_unit, target, reference, ind.aggregate, en,
                                 t("db_period"))
    years = [str(y) for y in snap.years]
    out["years"] = dc.trend(
        f"{name} · {unit.name} · {t('db_yearly')}", years,
        [(unit.name, [value_of(snap, ind, y, unit.id) for y in years], dc.GREEN)],
        shown_unit, target, reference, ind.aggregate, en, t("db_period"), kind="bar")
    places = [(dc.Bar(x.unit.name, x.rate, x.href), x.unit.lat, x.unit.lon) for x in lines
              if x.unit.lat is not None and x.unit.lon is not None]
    if places:
        out["map"] = dc.township_map(
            f"{name} · {t('db_map')} · {period}",
            [(b, float(lat), float(lon)) for b, lat, lon in places if lat and lon],
            shown_unit, target, ind.aggregate, en,
            [t("db_name"), t("db_value"), t("db_position")])
    return out


def _detail(line: Line) -> str:
    if line.denominator is None:
        return "" if line.numerator is None else f"{line.numerator:g}"
    return f"{(line.numerator or 0):g} / {line.denominator:g}"


def page_context(snap: Snapshot, choice: Choice, url: Url, t: Callable[[str], str], en: bool
                 ) -> dict[str, Any]:
    ind, target = choice.indicator, target_of(choice.indicator)
    lines = lines_of(snap, choice, url)
    current = snap.row(ind.id, choice.period, choice.unit.id) or {}
    value = value_of(snap, ind, choice.period, choice.unit.id)
    crumbs = [(u.name if u.id != "county" else t("db_county_all"),
               url("/dashboard/county", indicator=ind.id, unit=u.id, period=choice.period))
              for u in snap.path(choice.unit.id)]
    groups: dict[str, list[Indicator]] = {}
    for i in indicators().values():
        groups.setdefault(i.id.split("-")[0], []).append(i)
    return {
        "choice": choice, "ind": ind, "target": target, "lines": lines, "current": current,
        "value": value, "met": None if target is None else target.met(current.get("rate")),
        "crumbs": crumbs, "charts": charts(snap, choice, lines, t, en),
        "periods": periods_of(snap, ind), "groups": groups, "snap": snap,
        "unit_label": ind.unit if ind.unit == "%" else t("db_unit_" + ind.unit),
        "export_query": {"indicator": ind.id, "unit": choice.unit.id,
                         "period": choice.period},
        "target_text": _target_text(target, en),
    }


def _target_text(target: Target | None, en: bool) -> str:
    if target is None:
        return ""
    return f"{target.label(en)} ({target.source_en if en else target.source_zh})"
