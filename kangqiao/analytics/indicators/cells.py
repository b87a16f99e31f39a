"""The facts summed per cell (indicator, period and one value of every stratum), kept up to
date as facts change, so that reading the results never rescans every fact.

A cell is the finest grain the results need: rolling cells up with GROUPING SETS gives
every stratum, kept in ``s_rollup`` (one row per indicator, period and stratum value) and
maintained by the same deltas, so that reading the results reads only that table. Summing
the ~20 facts per patient of a county of a million residents takes tens of seconds; the
cells are a few hundred thousand rows.

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
TABLE = (
    "CREATE OR REPLACE TABLE s_cells (indicator_id VARCHAR, period VARCHAR, "
    "township_id VARCHAR, village_id VARCHAR, doctor_id VARCHAR, sex VARCHAR, "
    "age_band VARCHAR, n BIGINT, num DOUBLE, den DOUBLE, vals DOUBLE[])"
)


# Age in completed years as integers (``derived`` macro ``age_on``, the same arithmetic):
# year and MMDD of the birth day per patient and of the period's end per period, so that
# the per-fact work is integer arithmetic rather than four date-part extractions.
_DIM_AGE = "year(birth_date) AS birth_year, month(birth_date) * 100 + day(birth_date) AS birth_md"
_PERIODS = (
    "(SELECT period, year(end_date) AS end_year, month(end_date) * 100 + day(end_date) "
    "AS end_md FROM s_periods)"
)
_AGE = "p.end_year - d.birth_year - CASE WHEN p.end_md < d.birth_md THEN 1 ELSE 0 END"
_STRATA = ("township_id", "village_id", "doctor_id", "sex")


def strata_sql(facts: str = "s_facts", where: str = "TRUE", dim: str = "d_dim") -> str:
    """Each fact of the table ``facts`` matching ``where`` with the strata of its cell
    (those of ``dim``)."""
    return f"""
        SELECT f.indicator_id, f.period,
            coalesce(d.township_id, '{UNKNOWN}') AS township_id,
            coalesce(d.village_id, '{UNKNOWN}') AS village_id,
            coalesce(d.doctor_id, '{UNKNOWN}') AS doctor_id,
            coalesce(d.gender, '{UNKNOWN}') AS sex,
            coalesce(age_band({_AGE}), '{UNKNOWN}') AS age_band,
            f.num, f.den, f.vals
        FROM (SELECT * FROM {facts} WHERE {where}) f
        JOIN {_PERIODS} p ON p.period = f.period
        LEFT JOIN (SELECT *, {_DIM_AGE} FROM {dim}) d ON d.patient_id = f.patient_id"""


def cells_sql(where: str = "TRUE", dim: str = "d_dim", facts: str = "s_facts") -> str:
    """Facts of the table ``facts`` matching ``where`` summed per cell, with the strata of
    ``dim``."""
    return f"""
        SELECT {", ".join(KEY)}, count(*) AS n, sum(num) AS num, sum(den) AS den,
            flatten(list(vals) FILTER (WHERE vals IS NOT NULL)) AS vals
        FROM ({strata_sql(facts, where, dim)})
        GROUP BY ALL"""


def all_cells_sql() -> str:
    """:func:`cells_sql` of every fact, for a full build.

    The four place and sex strata of a patient are numbered (``cell_no``) before the
    facts are grouped: grouping ~17 facts per resident by one integer and the age band
    instead of four strings saves ~20-40% of this query; the strings are joined back to
    the groups. (Numbering every patient costs a sort of d_dim: not worth it for the few
    facts of a refresh.)"""
    strata = ", ".join(
        f"coalesce({'gender' if c == 'sex' else c}, '{UNKNOWN}') AS {c}" for c in _STRATA
    )
    return f"""
        WITH d AS (
            SELECT patient_id, {strata}, {_DIM_AGE},
                dense_rank() OVER (ORDER BY {", ".join(_STRATA)}) AS cell_no
            FROM d_dim),
        g AS (
            SELECT f.indicator_id, f.period, d.cell_no,
                coalesce(age_band({_AGE}), '{UNKNOWN}') AS age_band,
                count(*) AS n, sum(f.num) AS num, sum(f.den) AS den,
                flatten(list(f.vals) FILTER (WHERE f.vals IS NOT NULL)) AS vals
            FROM s_facts f
            JOIN {_PERIODS} p ON p.period = f.period
            LEFT JOIN d ON d.patient_id = f.patient_id
            GROUP BY ALL),
        names AS (SELECT DISTINCT cell_no, {", ".join(_STRATA)} FROM d)
        SELECT g.indicator_id, g.period,
            {", ".join(f"coalesce(names.{c}, '{UNKNOWN}') AS {c}" for c in _STRATA)},
            g.age_band, g.n, g.num, g.den, g.vals
        FROM g LEFT JOIN names ON names.cell_no = g.cell_no"""


# The strata the results offer besides the county, by the cell column they group.
ROLLUP_STRATA = {
    "township": "township_id",
    "village": "village_id",
    "doctor": "doctor_id",
    "sex": "sex",
    "age-band": "age_band",
}
ROLLUP_KEY = ("indicator_id", "period", "stratum", "stratum_id")


def rollup_sql(cells: str = "s_cells", where: str = "TRUE", medians: bool = True) -> str:
    """The rows of ``cells`` matching ``where`` summed per indicator, period and value of
    each stratum (the county as stratum ``county``), with the fact count ``n``."""
    cols = ROLLUP_STRATA.values()
    sets = ["(indicator_id, period)"] + [f"(indicator_id, period, {c})" for c in cols]
    label = " ".join(f"WHEN grouping({c}) = 0 THEN '{s}'" for s, c in ROLLUP_STRATA.items())
    value = " ".join(f"WHEN grouping({c}) = 0 THEN {c}" for c in cols)
    median = (
        "list_aggregate(flatten(list(vals)), 'median')" if medians else "NULL::DOUBLE"
    )
    return f"""
        SELECT indicator_id, period,
            CASE {label} ELSE 'county' END AS stratum,
            CASE {value} ELSE 'county' END AS stratum_id,
            sum(n) AS n, sum(num) AS num, sum(den) AS den, {median} AS median
        FROM (SELECT * FROM {cells} WHERE {where})
        GROUP BY GROUPING SETS ({", ".join(sets)})"""


def rebuild(store: IndicatorStore) -> None:
    store.con.execute(TABLE)
    store.con.execute(f"INSERT INTO s_cells {all_cells_sql()}")
    rebuild_rollup(store)


def rebuild_rollup(store: IndicatorStore) -> None:
    store.con.execute(f"CREATE OR REPLACE TABLE s_rollup AS {rollup_sql()}")


def ensure(store: IndicatorStore) -> None:
    """Build the cells, or only the roll-up, of a store written before they were kept."""
    if not store._has_table("s_cells"):
        rebuild(store)
    elif not store._has_table("s_rollup"):
        rebuild_rollup(store)


def _in(ids: Sequence[str]) -> str:
    return ", ".join("'" + i.replace("'", "''") + "'" for i in ids)


class Delta:
    """Collects the change of the cells while facts are replaced: the facts to subtract
    and to add are summed per cell in one pass when the delta is applied."""

    def __init__(self, store: IndicatorStore) -> None:
        self.con = store.con
        self.medians: set[str] = {i.id for i in store.catalogue if i.value is not None}
        self._signed: list[str] = []  # the facts with their strata and sign
        self._tables: list[str] = []

    def record(self, facts: str, sign: int, dim: str = "d_dim") -> None:
        """Add (``sign`` 1) or subtract (-1) the facts in the table ``facts`` (read when
        the delta is applied) with the strata of ``dim``."""
        rows = strata_sql(facts, f"NOT ({self._medians_sql()})", dim)
        self._signed.append(f"SELECT *, {int(sign)} AS sign FROM ({rows})")
        self._tables.append(facts)

    def _medians_sql(self) -> str:
        return f"indicator_id IN ({_in(sorted(self.medians))})" if self.medians else "FALSE"

    def apply(self) -> None:
        """Merge the delta into ``s_cells``; recompute the median indicators' cells of the
        periods whose facts changed."""
        if not self._signed:
            return
        keys = ", ".join(KEY)
        con = self.con
        # One CREATE AS (not CREATE then INSERT: DuckDB 2.0.0 hides a first INSERT of a
        # row group or more, 122,880 rows, into a table created empty in the transaction).
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _delta_sum AS SELECT {keys}, sum(sign) AS n, "
            f"sum(sign * num) AS num, sum(sign * den) AS den "
            f"FROM ({' UNION ALL '.join(self._signed)}) GROUP BY ALL"
        )
        self._merge("s_cells", KEY, "_delta_sum", "NULL::DOUBLE[]")
        # The roll-up changes by the delta rolled up (GROUPING SETS over the few changed
        # cells, not over all of them).
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _rollup_delta AS "
            + rollup_sql("_delta_sum", medians=False)
        )
        self._merge("s_rollup", ROLLUP_KEY, "_rollup_delta", "NULL::DOUBLE")
        self._recompute_medians()
        con.execute("DROP TABLE _delta_sum")
        con.execute("DROP TABLE _rollup_delta")

    def _merge(self, table: str, key: Sequence[str], delta: str, last: str) -> None:
        """Add the sums of ``delta`` to ``table`` (rows keyed by ``key``, then ``n``,
        ``num``, ``den`` and a last column set to ``last``); one join gives the new sums and
        the old rows, and a row whose count reaches zero goes."""
        on = " AND ".join(f"s.{k} = d.{k}" for k in key)
        con = self.con
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _merged AS SELECT s.rowid AS old_row, "
            f"{', '.join(f'd.{k}' for k in key)}, coalesce(s.n, 0) + d.n AS n, "
            + ", ".join(
                f"CASE WHEN s.{c} IS NULL THEN d.{c} WHEN d.{c} IS NULL THEN s.{c} "
                f"ELSE s.{c} + d.{c} END AS {c}"
                for c in ("num", "den")
            )
            + f" FROM {delta} d LEFT JOIN {table} s ON {on}"
        )
        con.execute(
            f"DELETE FROM {table} WHERE rowid IN "
            "(SELECT old_row FROM _merged WHERE old_row IS NOT NULL)"
        )
        con.execute(
            f"INSERT INTO {table} SELECT {', '.join(key)}, n, num, den, {last} "
            f"FROM _merged WHERE n > 0"
        )
        con.execute("DROP TABLE _merged")

    def _recompute_medians(self) -> None:
        """Medians cannot be subtracted: recompute the cells of the median indicators and
        periods whose facts changed (few: one fact per referral or teleconsultation)."""
        tables = " UNION ALL ".join(f"SELECT indicator_id, period FROM {t}" for t in self._tables)
        changed = self.con.execute(
            f"SELECT DISTINCT indicator_id, period FROM ({tables}) WHERE {self._medians_sql()}"
        ).fetchall()
        if changed:
            which = " OR ".join(
                f"(indicator_id = {_in([i])} AND period = {_in([p])})" for i, p in sorted(changed)
            )
            self.con.execute(f"DELETE FROM s_cells WHERE {which}")
            self.con.execute(f"INSERT INTO s_cells {cells_sql(which)}")
            self.con.execute(f"DELETE FROM s_rollup WHERE {which}")
            self.con.execute(f"INSERT INTO s_rollup {rollup_sql(where=which)}")
