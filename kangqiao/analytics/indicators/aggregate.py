"""Sum the per-patient facts into rates per stratum, with small-cell suppression.

Two stages: the facts are summed per combination of all strata (a few thousand cells per
indicator and period however many patients there are; kept up to date in ``s_cells`` by
:mod:`.cells`), and those cells are rolled up here with GROUPING SETS into county /
township / village / doctor / sex / age band.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kangqiao.analytics.indicators import cells
from kangqiao.analytics.indicators.catalogue import STRATA

if TYPE_CHECKING:
    from kangqiao.analytics.indicators.engine import IndicatorStore

UNKNOWN = cells.UNKNOWN
COLUMN = {
    "township": "township_id",
    "village": "village_id",
    "doctor": "doctor_id",
    "sex": "sex",
    "age-band": "age_band",
}
SEX_ZH = {"male": "男", "female": "女", "other": "其他", "unknown": "未知"}


def _sql(strata: Sequence[str], periods: Sequence[str] | None) -> str:
    cols = [COLUMN[s] for s in strata if s in COLUMN]
    sets = ["(indicator_id, period)"] + [f"(indicator_id, period, {c})" for c in cols]
    label = " ".join(f"WHEN grouping({c}) = 0 THEN '{s}'" for s, c in COLUMN.items() if c in cols)
    value = " ".join(f"WHEN grouping({c}) = 0 THEN {c}" for c in cols)
    where = ""
    if periods:
        where = (
            "WHERE period IN ("
            + ", ".join("'" + p.replace("'", "''") + "'" for p in periods)
            + ")"
        )
    return f"""
        WITH cells AS (SELECT * FROM s_cells {where})
        SELECT indicator_id, period,
            CASE {label or "WHEN FALSE THEN ''"} ELSE 'county' END AS stratum,
            CASE {value or "WHEN FALSE THEN ''"} ELSE 'county' END AS stratum_id,
            sum(num) AS num, sum(den) AS den,
            list_aggregate(flatten(list(vals)), 'median') AS median
        FROM cells
        GROUP BY GROUPING SETS ({", ".join(sets)})
        ORDER BY indicator_id, period, stratum, stratum_id"""


def _number(x: float | None) -> float | int | None:
    if x is None:
        return None
    return int(x) if float(x).is_integer() else round(float(x), 6)


def is_suppressed(numerator: float | None, denominator: float | None, below: int) -> bool:
    """Small cells: a count from 1 to ``below - 1``, or a denominator under ``below``."""
    if below <= 0:
        return False
    if numerator is not None and 0 < numerator < below:
        return True
    return denominator is not None and denominator < below


def aggregate(
    store: IndicatorStore,
    strata: Sequence[str],
    suppress_below: int,
    periods: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    unknown = set(strata) - set(STRATA)
    if unknown:
        raise ValueError(f"unknown strata {sorted(unknown)}; use {', '.join(STRATA)}")
    con = store.con
    if not store._has_table("s_cells"):  # a store written before cells were kept
        cells.rebuild(store)
    names = dict(con.execute("SELECT id, name FROM v_organization").fetchall())
    names |= dict(con.execute("SELECT id, name FROM v_practitioner_role").fetchall())
    kinds = dict(con.execute("SELECT period, kind FROM s_periods").fetchall())
    by_id = {i.id: i for i in store.catalogue}
    out: list[dict[str, Any]] = []
    for ind_id, period, stratum, sid, num, den, median in con.execute(
        _sql(strata, periods)
    ).fetchall():
        ind = by_id.get(ind_id)
        if ind is None or (stratum != "county" and stratum not in ind.stratifiers):
            continue
        if ind.aggregate == "ratio":
            rate = None if not den else num / den
        elif ind.aggregate == "median":
            rate, den = median, None
        else:
            rate, den = None, None
        suppressed = is_suppressed(num, den, suppress_below)
        if sid == UNKNOWN:
            label = "未知"
        elif stratum == "county":
            label = "全县"
        elif stratum == "sex":
            label = SEX_ZH.get(sid, sid)
        else:
            label = names.get(sid, sid)
        out.append(
            {
                "indicator_id": ind_id,
                "period": period,
                "period_type": kinds.get(period),
                "stratum": stratum,
                "stratum_id": sid,
                "stratum_name": label,
                "numerator": None if suppressed else _number(num),
                "denominator": None if suppressed else _number(den),
                "rate": None if suppressed or rate is None else round(float(rate), 6),
                "suppressed": suppressed,
                "target": ind.target_value,
                "unit": ind.unit,
            }
        )
    return out
