"""The clinic dashboard (issue 6), for a township health centre or a village clinic: the
NBPHS-2017 assessment indicators (规范管理率, 管理人群血压控制率, 管理人群血糖控制率) and the
HEARTS cohort (among hypertensive patients registered >= 3 months: controlled, uncontrolled,
visit without BP, missed visit, lost to follow-up) per village, with monthly trends and the
targets drawn. The numbers are the indicator engine's over the user's own view of the
record (:mod:`.dashboard_data`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kangqiao.web import dashboard_charts as dc
from kangqiao.web.dashboard_access import indicators, target_of
from kangqiao.web.dashboard_data import Snapshot, Unit
from kangqiao.web.workbench_charts import Chart

NBPHS = ("nbphs-htn-standardised-management", "nbphs-htn-bp-control",
         "nbphs-dm-standardised-management", "nbphs-dm-glucose-control")
HEARTS = ("hearts-controlled", "hearts-uncontrolled", "hearts-visit-no-bp",
          "hearts-missed-visit", "hearts-lost-to-follow-up")
Url = Callable[..., str]


def home_of(snap: Snapshot, organization: str | None) -> Unit | None:
    """The user's township (their centre) or village (their clinic)."""
    if not organization:
        return None
    unit = snap.units.get(organization.split("/", 1)[-1])
    return unit if unit is not None and unit.level in ("township", "village") else None


def places(snap: Snapshot, home: Unit) -> list[Unit]:
    """The places compared: the villages of a township, or the one village."""
    if home.level == "village":
        return [home]
    return sorted((u for u in snap.kids(home.id) if u.level == "village"), key=lambda u: u.id)


def _rate(snap: Snapshot, ind: str, period: str, unit: str) -> float | None:
    return dc.scale(snap.rate(ind, period, unit), "ratio")


def kpis(snap: Snapshot, home: Unit, year: str, en: bool) -> list[dict[str, Any]]:
    out = []
    catalogue = indicators()
    for ind_id in NBPHS + HEARTS[:1]:
        ind, target = catalogue[ind_id], target_of(catalogue[ind_id])
        period = year if ind_id in NBPHS else _latest_month(snap, year)
        row = snap.row(ind_id, period, home.id) or {}
        out.append({"id": ind_id, "name": ind.name["en" if en else "zh"], "period": period,
                    "value": _rate(snap, ind_id, period, home.id),
                    "numerator": row.get("numerator"), "denominator": row.get("denominator"),
                    "target": target, "met": None if target is None else target.met(
                        row.get("rate"))})
    return out


def _state(name: str) -> str:
    """"HEARTS 队列：血压控制" -> "血压控制"; "HEARTS cohort: lost to follow-up" ->
    "Lost to follow-up"."""
    short = name.split("：")[-1].split(": ")[-1]
    return short[:1].upper() + short[1:]


def _latest_month(snap: Snapshot, year: str) -> str:
    months = [m for m in snap.months if m.startswith(year)]
    return months[-1] if months else year


def charts(snap: Snapshot, home: Unit, year: str, t: Callable[[str], str], en: bool,
           url: Url) -> dict[str, Chart]:
    catalogue, lang = indicators(), "en" if en else "zh"
    where = places(snap, home)
    out: dict[str, Chart] = {}
    for ind_id in NBPHS:
        ind = catalogue[ind_id]
        bars = []
        for v in where:
            row = snap.row(ind_id, year, v.id) or {}
            detail = "" if not row else f"{row.get('numerator') or 0:g} / " \
                                        f"{row.get('denominator') or 0:g}"
            bars.append(dc.Bar(v.name, _rate(snap, ind_id, year, v.id), None, detail))
        bars.sort(key=lambda b: (b.value is None, -(b.value or 0)))
        out[ind_id] = dc.ranking(
            f"{ind.name[lang]} · {year}", bars, "%", target_of(ind),
            (home.name, _rate(snap, ind_id, year, home.id)), "ratio", en,
            [t("db_rank"), t("db_village"), t("db_value"), t("db_num_den")])
    month = _latest_month(snap, year)
    states = [(s, _state(catalogue[s].name[lang]),
               [_rate(snap, s, month, v.id) for v in where]) for s in HEARTS]
    out["cohort"] = dc.cohort(
        f"{t('db_hearts')} · {month}", [v.name for v in where], states,
        target_of(catalogue["hearts-controlled"]), en,
        [t("db_village"), *(s[1] for s in states)], [None for _ in where])
    months = [m for m in snap.months if m <= month][-12:]
    series = [(_state(catalogue[s].name[lang]),
               [_rate(snap, s, m, home.id) for m in months], dc.HEARTS_COLOURS[s])
              for s in HEARTS]
    out["cohort_trend"] = dc.trend(
        f"{t('db_hearts')} · {home.name} · {t('db_monthly')}", months, series, "%",
        target_of(catalogue["hearts-controlled"]), None, "ratio", en, t("db_period"))
    years = [str(y) for y in snap.years]
    out["nbphs_years"] = dc.trend(
        f"{t('db_nbphs')} · {home.name} · {t('db_yearly')}", years,
        [(catalogue[i].name[lang], [_rate(snap, i, y, home.id) for y in years], colour)
         for i, colour in zip(NBPHS, (dc.GREEN, dc.BLUE, "#c65d21", "#7c5ba6"), strict=True)],
        "%", target_of(catalogue[NBPHS[0]]), None, "ratio", en, t("db_period"), kind="bar")
    return out
