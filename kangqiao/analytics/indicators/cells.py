"""The facts summed per cell (indicator, period and one value of every stratum), kept up to
date as facts change, so that reading the results never rescans every fact.

A cell is the finest grain the results need: rolling cells up with GROUPING SETS
(:mod:`.aggregate`) gives every stratum. Summing the ~20 facts per patient of a county of
a million residents takes tens of seconds; the cells are a few hundred thousand rows.

Maintenance is by deltas: before facts are replaced, their contribution (with the strata
they were counted under) is subtracted, afterwards the new facts are added, and a cell
whose fact count reaches zero is dropped - exactly the cells a full recompute would give.
Numerators and denominators are sums of doubles (integers for all but the prevalence-
weighted denominators, whose results are rounded to 6 decimals), so the order of the
additions does not change a result. Medians cannot be subtracted: the cells of indicators
with a ``value`` are recomputed from their facts, which are few (one per referral or
teleconsultation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kangqiao.analytics.indicators.engine import IndicatorStore

UNKNOWN = "?"
KEY = ("indicator_id", "period", "township_id", "village_id", "doctor_id", "sex", "age_band")
SUMS = (
    "indicator_id VARCHAR, period VARCHAR, township_id VARCHAR, village_id VARCHAR, "
    "doctor_id VARCHAR, sex VARCHAR, age_band VARCHAR, n BIGINT, num DOUBLE, den DOUBLE"
)
TABLE = f"CREATE OR REPLACE TABLE s_cells ({SUMS}, vals DOUBLE[])"


def cells_sql(
    where: str = "TRUE", dim: str = "d_dim", sign: int = 1, facts: str = "s_facts"
) -> str:
    """Facts of the table ``facts`` matching ``where`` summed per cell, with the strata of
    ``dim``; ``sign`` -1 gives the contribution to subtract."""
    return f"""
        SELECT f.indicator_id, f.period,
            coalesce(d.township_id, '{UNKNOWN}') AS township_id,
            coalesce(d.village_id, '{UNKNOWN}') AS village_id,
            coalesce(d.doctor_id, '{UNKNOWN}') AS doctor_id,
            coalesce(d.gender, '{UNKNOWN}') AS sex,
            coalesce(age_band(age_on(d.birth_date, p.end_date)), '{UNKNOWN}') AS age_band,
            {sign} * count(*) AS n, {sign} * sum(f.num) AS num, {sign} * sum(f.den) AS den,
            flatten(list(f.vals) FILTER (WHERE f.vals IS NOT NULL)) AS vals
        FROM (SELECT * FROM {facts} WHERE {where}) f
        JOIN s_periods p ON p.period = f.period
        LEFT JOIN {dim} d ON d.patient_id = f.patient_id
        GROUP BY ALL"""


def rebuild(store: IndicatorStore) -> None:
    store.con.execute(TABLE)
    store.con.execute(f"INSERT INTO s_cells {cells_sql()}")


def _in(ids: Sequence[str]) -> str:
    return ", ".join("'" + i.replace("'", "''") + "'" for i in ids)


class Delta:
    """Collects the change of the cells while facts are replaced."""

    def __init__(self, store: IndicatorStore) -> None:
        self.con = store.con
        self.medians: set[str] = {i.id for i in store.catalogue if i.value is not None}
        # Declared, not ``AS SELECT ... WHERE FALSE``: DuckDB 2.0.0 loses a first INSERT
        # of a row group or more (122,880 rows) into a table created empty by CREATE AS
        # in the same transaction (scans and aggregates see no rows, count(*) sees them).
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE _delta ({SUMS})")
        # (indicator, period) of the median indicators whose facts changed.
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE _median_changed (indicator_id VARCHAR, period VARCHAR)"
        )

    def record(self, facts: str, sign: int, dim: str = "d_dim") -> None:
        """Add (``sign`` 1) or subtract (-1) the facts in the table ``facts``."""
        medians = f"indicator_id IN ({_in(sorted(self.medians))})" if self.medians else "FALSE"
        summed = cells_sql(f"NOT ({medians})", dim, sign, facts)
        self.con.execute(f"INSERT INTO _delta SELECT * EXCLUDE (vals) FROM ({summed})")
        self.con.execute(
            f"INSERT INTO _median_changed SELECT DISTINCT indicator_id, period FROM {facts} "
            f"WHERE {medians}"
        )

    def apply(self) -> None:
        """Merge the delta into ``s_cells``; recompute the median indicators' cells of the
        periods whose facts changed."""
        on = " AND ".join(f"s.{k} = d.{k}" for k in KEY)
        keys = ", ".join(KEY)
        con = self.con
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _delta_sum AS SELECT {keys}, sum(n) AS n, "
            f"sum(num) AS num, sum(den) AS den FROM _delta GROUP BY ALL"
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _merged AS SELECT {keys}, sum(n) AS n, "
            f"sum(num) AS num, sum(den) AS den, NULL::DOUBLE[] AS vals FROM ("
            f"SELECT s.{', s.'.join(KEY)}, s.n, s.num, s.den FROM s_cells s "
            f"SEMI JOIN _delta_sum d ON {on} "
            f"UNION ALL SELECT * FROM _delta_sum) GROUP BY ALL"
        )
        con.execute(f"DELETE FROM s_cells s USING _delta_sum d WHERE {on}")
        con.execute("INSERT INTO s_cells SELECT * FROM _merged WHERE n > 0")
        changed = con.execute("SELECT DISTINCT * FROM _median_changed").fetchall()
        if changed:
            which = " OR ".join(
                f"(indicator_id = {_in([i])} AND period = {_in([p])})" for i, p in sorted(changed)
            )
            con.execute(f"DELETE FROM s_cells WHERE {which}")
            con.execute(f"INSERT INTO s_cells {cells_sql(which)}")
        for t in ("_delta", "_delta_sum", "_merged", "_median_changed"):
            con.execute(f"DROP TABLE IF EXISTS {t}")
