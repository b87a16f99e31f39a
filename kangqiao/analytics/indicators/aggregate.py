"""Sum the per-patient facts into rates per stratum, with small-cell suppression.

Two stages, both kept up to date by :mod:`.cells`: the facts are summed per combination of
all strata (a few thousand cells per indicator and period however many patients there are,
``s_cells``), and those cells are rolled up with GROUPING SETS into county / township /
village / doctor / sex / age band (``s_rollup``), which is what is read here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kangqiao.analytics.indicators import cells
from kangqiao.analytics.indicators.catalogue import STRATA

if TYPE_CHECKING:
    from kangqiao.analytics.indicators.engine import IndicatorStore

UNKNOWN = cells.UNKNOWN
COLUMN = cells.ROLLUP_STRATA
SEX_ZH = {"male": "男", "female": "女", "other": "其他", "unknown": "未知"}


KEYS = (
    "indicator_id", "period", "period_type", "stratum", "stratum_id", "stratum_name",
    "numerator", "denominator", "rate", "suppressed", "target", "unit",
)  # fmt: skip


def is_suppressed(numerator: float | None, denominator: float | None, below: int) -> bool:
    """Small cells: a count from 1 to ``below - 1``, or a denominator under ``below``."""
    if below <= 0:
        return False
    if numerator is not None and 0 < numerator < below:
        return True
    return denominator is not None and denominator < below


def suppressed_sql(numerator: str, denominator: str, below: int) -> str:
    """:func:`is_suppressed` as a SQL expression over the columns given."""
    if below <= 0:
        return "FALSE"
    return (
        f"coalesce({numerator} > 0 AND {numerator} < {int(below)}, FALSE) "
        f"OR coalesce({denominator} < {int(below)}, FALSE)"
    )


def _literal(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, (int, float)):
        return f"{float(v)!r}::DOUBLE"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(map(_literal, v)) + "]::VARCHAR[]"
    return "'" + str(v).replace("'", "''") + "'"


def _sql(
    store: IndicatorStore, strata: Sequence[str], periods: Sequence[str] | None, below: int
) -> str:
    """The result rows, in the order and with the columns of :data:`KEYS`."""
    wanted = ["county", *(s for s in strata if s in COLUMN)]
    where = "stratum IN (" + ", ".join(map(_literal, wanted)) + ")"
    if periods:
        where += " AND period IN (" + ", ".join(map(_literal, periods)) + ")"
    facts = [(i.id, i.aggregate, list(i.stratifiers), i.target_value, i.unit)
             for i in store.catalogue]  # fmt: skip
    meta = ", ".join("(" + ", ".join(map(_literal, f)) + ")" for f in facts)
    sexes = ", ".join(f"({_literal(k)}, {_literal(v)})" for k, v in SEX_ZH.items())
    # Doctors are PractitionerRoles; a name found for both kinds is the role's.
    return f"""
        WITH m (indicator_id, kind, stratifiers, target, unit) AS (VALUES {meta}),
        sexes (code, label) AS (VALUES {sexes}),
        names AS (SELECT id, arg_max(name, pri) AS name FROM (
            SELECT id, name, 0 AS pri FROM v_organization
            UNION ALL SELECT id, name, 1 FROM v_practitioner_role) GROUP BY id),
        r AS (
            SELECT r.*, m.kind, m.target, m.unit,
                CASE WHEN m.kind = 'ratio' THEN r.den END AS shown_den,
                CASE m.kind WHEN 'ratio' THEN CASE WHEN r.den <> 0 THEN r.num / r.den END
                    WHEN 'median' THEN r.median END AS value
            FROM s_rollup r JOIN m ON m.indicator_id = r.indicator_id
            WHERE {where}
              AND (r.stratum = 'county' OR list_contains(m.stratifiers, r.stratum))),
        s AS (SELECT r.*, {suppressed_sql("r.num", "r.shown_den", below)} AS hidden FROM r)
        SELECT s.indicator_id, s.period, p.kind, s.stratum, s.stratum_id,
            CASE WHEN s.stratum_id = '{UNKNOWN}' THEN '未知'
                WHEN s.stratum = 'county' THEN '全县'
                WHEN s.stratum = 'sex' THEN coalesce(x.label, s.stratum_id)
                WHEN n.id IS NOT NULL THEN n.name ELSE s.stratum_id END,
            CASE WHEN NOT s.hidden THEN round(s.num, 6) END,
            CASE WHEN NOT s.hidden THEN round(s.shown_den, 6) END,
            CASE WHEN NOT s.hidden THEN round(s.value, 6) END,
            s.hidden, s.target, s.unit
        FROM s
        LEFT JOIN s_periods p ON p.period = s.period
        LEFT JOIN sexes x ON s.stratum = 'sex' AND x.code = s.stratum_id
        LEFT JOIN names n ON s.stratum NOT IN ('county', 'sex') AND n.id = s.stratum_id
        ORDER BY s.indicator_id, s.period, s.stratum, s.stratum_id"""


def _whole(x: Any) -> Any:
    return int(x) if isinstance(x, float) and x.is_integer() else x


def aggregate(
    store: IndicatorStore,
    strata: Sequence[str],
    suppress_below: int,
    periods: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    unknown = set(strata) - set(STRATA)
    if unknown:
        raise ValueError(f"unknown strata {sorted(unknown)}; use {', '.join(STRATA)}")
    cells.ensure(store)
    rows = store.con.execute(_sql(store, strata, periods, suppress_below)).fetchall()
    # Counts are whole numbers; the rounding in SQL also evens out sums that deltas added
    # in another order than a full build (296.99999999999994 for 297).
    return [
        dict(zip(KEYS, (*r[:6], _whole(r[6]), _whole(r[7]), *r[8:]), strict=True))
        for r in rows
    ]
