"""Compute the catalogue on DuckDB from NDJSON, fully or incrementally.

Pipeline (all SQL, all in one DuckDB database, in memory or a file):

1. every ViewDefinition in ``analytics/views`` runs once over the NDJSON files of its
   resource type into a table ``v_<view>`` (keyed by ``id``; ``patient_id`` where the
   resource belongs to a patient);
2. derived tables (:mod:`.derived`) join them into visits, enrolments, lab tests and
   each patient's strata (``d_<name>``);
3. every indicator's ``units`` query is reduced to one *fact* row per patient, period and
   indicator (numerator, denominator, values for medians) in ``s_facts``;
4. :mod:`.cells` sums the facts per cell (indicator, period, one value of every stratum)
   into ``s_cells``, and :mod:`.aggregate` rolls the cells up per stratum.

Incremental refresh: because every fact belongs to one patient, new NDJSON only changes
the facts of the patients it mentions. A refresh upserts the new view rows, rebuilds
the derived rows and facts of those patients only and re-aggregates (the facts are
small); the cells change by the difference of those patients' old and new facts, so no
refresh re-sums every fact. Three things are global and trigger more work: a change of
Organization or PractitionerRole (strata of everyone: full rebuild), a new month in the data (a new
period: full rebuild) and a later reference day (the ``as_of`` indicators, HEARTS,
are recomputed in the periods whose reference day moved, the current month and year, for
the patients with a date the indicator declares near the old or new reference day: see
:mod:`.catalogue`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from kangqiao.analytics import compile_view
from kangqiao.analytics.indicators import cells, derived
from kangqiao.analytics.indicators.catalogue import Indicator, load_catalogue, load_views
from kangqiao.analytics.sources import PARQUET_SUFFIX, is_parquet, resource_type_of, struct_source
from kangqiao.analytics.viewsql import merge_structures

INPUT_SUFFIXES = (".ndjson", ".ndjson.gz", PARQUET_SUFFIX)
DEFERRED_CHECKPOINT_THRESHOLD = "1GB"  # WAL a build or refresh may leave for later
FACT_COLUMNS = (
    "indicator_id VARCHAR, patient_id INTEGER, period VARCHAR, num DOUBLE, den DOUBLE, "
    "vals DOUBLE[]"
)
# Patient ids are stored as numbers (``s_patient_keys``): a refresh selects the touched
# patients' rows from tables of millions of rows, and DuckDB filters a scan by a join on
# dense integers several times faster than on strings (17 M facts: 0.12 s against 0.45 s).
PATIENT_KEYS = "s_patient_keys"
LAST_DAY = "last_encounter_day"  # s_meta: the latest encounter day, '' for none


@dataclass(frozen=True)
class FactScope:
    """Facts a refresh replaces: of ``indicators``, of the patients in the table
    ``patients``, in ``periods`` (None: every period)."""

    indicators: tuple[Indicator, ...]
    patients: str
    periods: tuple[str, ...] | None = None


def input_files(paths: Iterable[str | Path]) -> list[Path]:
    """NDJSON and Parquet files under ``paths`` (files or directories, searched
    recursively)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(
                f for f in p.rglob("*") if f.is_file() and f.name.endswith(INPUT_SUFFIXES)
            )
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(f"input not found: {p}")
    return files


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class IndicatorStore:
    """The state of the indicators for one county: view rows, derived rows, facts."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        catalogue: Sequence[Indicator] | None = None,
        params: dict[str, Any] | None = None,
        threads: int | None = None,
    ) -> None:
        self.con = duckdb.connect(str(path) if path is not None else ":memory:")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        # No statement here depends on the order rows are stored in (results are sorted,
        # patient numbers are arbitrary), and unordered inserts let each thread write its own
        # row groups: a million residents' 13 M observations are stored ~2 s faster.
        self.con.execute("SET preserve_insertion_order = false")
        self.catalogue = tuple(catalogue) if catalogue is not None else load_catalogue()
        self.views = load_views()
        self._compiled = {name: compile_view(v) for name, v in self.views.items()}
        for macro in derived.MACROS:
            self.con.execute(macro)
        self.params = params or {}
        if self._has_table("s_meta"):
            self.params = {**json.loads(self._meta("params") or "{}"), **(params or {})}

    # --- public --------------------------------------------------------------------------
    def load(
        self, inputs: Iterable[str | Path], years: Sequence[int], as_of: dt.date | None = None
    ) -> None:
        """Full build from NDJSON or Parquet for calendar ``years`` (their months are periods
        too). The WAL is left for :meth:`checkpoint` or :meth:`close` to fold into the file."""
        # Later inputs replace earlier ones resource by resource (a base export, then
        # newer files); ids are taken to be unique within one input, as in a bulk export.
        groups = [input_files([p]) for p in inputs] or [[]]
        self.con.execute("CREATE OR REPLACE TABLE s_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        self.con.execute(
            f"CREATE OR REPLACE TABLE {PATIENT_KEYS} (patient_id VARCHAR, patient_no INTEGER)"
        )
        self._set_meta("years", json.dumps(sorted(set(map(int, years)))))
        self._set_meta("as_of_override", as_of.isoformat() if as_of else "")
        self._set_meta("params", json.dumps(self.params))
        with self._checkpoint_deferred():
            self._run_views(groups[0], "TABLE v_")
            for files in groups[1:]:
                self._stage(files)
                self._upsert()
            self._rebuild()

    def refresh(self, inputs: Iterable[str | Path]) -> dict[str, Any]:
        """Apply new NDJSON (new or changed resources); returns what was recomputed.

        One transaction: a failed refresh leaves the store as it was, and the database file
        is written once at the commit instead of after each of the ~150 statements."""
        # The commit writes the WAL only; folding it into the file (a checkpoint, which
        # DuckDB would run at this commit: ~3 s at a million residents, most of the
        # refresh) is left to close() or checkpoint(), when nobody waits for the results.
        with self._checkpoint_deferred():
            self.con.execute("BEGIN TRANSACTION")
            try:
                done = self._refresh(inputs)
            except BaseException:
                self.con.execute("ROLLBACK")
                raise
            self.con.execute("COMMIT")
        return done

    @contextlib.contextmanager
    def _checkpoint_deferred(self) -> Iterator[None]:
        """No automatic checkpoint meanwhile: DuckDB would run one inside whichever
        statement's commit crosses its WAL threshold (seconds at a million residents)."""
        row = self.con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()
        self.con.execute(f"SET checkpoint_threshold = '{DEFERRED_CHECKPOINT_THRESHOLD}'")
        try:
            yield
        finally:
            if row is not None:
                self.con.execute(f"SET checkpoint_threshold = {_sql_str(str(row[0]))}")

    def checkpoint(self) -> None:
        """Write the WAL of builds and refreshes into the database file (close() does it
        too)."""
        self.con.execute("CHECKPOINT")

    def _refresh(self, inputs: Iterable[str | Path]) -> dict[str, Any]:
        if not self._has_table(PATIENT_KEYS):
            self._number_stored_patients()
        touched_views = self._stage(input_files(inputs))
        self._upsert_and_slice(touched_views)
        # The strata the touched patients' current facts were counted under.
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE _touched_dim AS SELECT * FROM main.d_dim "
            "WHERE patient_id IN (SELECT patient_id FROM touched)"
        )
        old_periods = self._periods_snapshot()
        self._write_periods()
        dims_changed = any(n in derived.DIMENSION_VIEWS for n in touched_views)
        if dims_changed or [p[:4] for p in old_periods] != [
            p[:4] for p in self._periods_snapshot()
        ]:
            self._rebuild()
            return {"mode": "full", "patients": None}
        cells.ensure(self)
        self._derive_patients(touched=True)
        scopes = [FactScope(self.catalogue, "touched")]
        # The reference day moved: the as_of indicators (HEARTS) change in the periods
        # whose reference day moved (the current month and year), for the patients with a
        # date near the old or the new reference day.
        moved = self._moved_reference_days(old_periods)
        as_of = tuple(i for i in self.catalogue if i.as_of)
        redone = 0
        old_dim = "SELECT * FROM _touched_dim"
        if moved and as_of:
            redone = self._find_as_of_patients(as_of, moved)
            scopes.append(FactScope(as_of, "_as_of_patients", tuple(sorted(moved))))
            # Their strata did not change (they are not touched): count them as they are.
            old_dim += (
                " UNION ALL SELECT * FROM main.d_dim "
                "WHERE patient_id IN (SELECT patient_id FROM _as_of_patients)"
            )
        # One CREATE AS, not CREATE then INSERT: see cells.Delta on a DuckDB bug.
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE _old_dim AS {old_dim}")
        self._replace_facts(scopes, old_dim="_old_dim")
        for table in ("_touched_dim", "_old_dim", "_as_of_patients",
                      *(f"td_{name}" for name in derived.PATIENT_TABLES)):  # fmt: skip
            self.con.execute(f"DROP TABLE IF EXISTS {table}")
        return {
            "mode": "incremental",
            "patients": self._count("touched"),
            "as_of_patients": redone,
        }

    def _number_stored_patients(self) -> None:
        """A store written before patient ids were numbered: number them in its view tables
        and rebuild what is derived from those."""
        keyed = [n for n in self.views if self._patient_keyed(n) and self._has_table(f"v_{n}")]
        ids = " UNION ".join(f"SELECT patient_id FROM main.v_{n}" for n in keyed)
        # One CREATE AS, not CREATE then INSERT: see cells.Delta on a DuckDB bug.
        self.con.execute(
            f"CREATE TABLE {PATIENT_KEYS} AS SELECT patient_id, "
            f"CAST(row_number() OVER () AS INTEGER) AS patient_no FROM "
            f"({ids or 'SELECT NULL::VARCHAR AS patient_id WHERE FALSE'})"
        )
        for name in keyed:
            self._store_view("TABLE v_", name, f"SELECT * FROM main.v_{name}", None)
        self._rebuild()

    def _moved_reference_days(
        self, old_periods: list[tuple[Any, ...]]
    ) -> dict[str, tuple[dt.date, dt.date]]:
        """Period -> (old, new) reference day, for the periods whose reference day moved.
        (A period that appeared or went triggers a full rebuild before this is asked.)"""
        old_as_of = {p[0]: p[4] for p in old_periods}
        return {
            p[0]: (old_as_of[p[0]], p[4])
            for p in self._periods_snapshot()
            if p[0] in old_as_of and old_as_of[p[0]] != p[4]
        }

    def _find_as_of_patients(
        self, indicators: Sequence[Indicator], moved: dict[str, tuple[dt.date, dt.date]]
    ) -> int:
        """``_as_of_patients``: the untouched patients whose ``indicators`` can change when
        the reference days move as in ``moved``: those with a declared date between the old
        and the new reference day minus one of the declared month offsets (closed bounds,
        a superset; see :mod:`.catalogue`). Returns their number."""
        self._bind(None)
        shifts = sorted({tuple(sorted(days)) for days in moved.values()})
        parts = set()
        for ind in indicators:
            assert ind.as_of_dates is not None  # the catalogue requires them
            near = " OR ".join(
                f"day BETWEEN DATE '{lo}' - INTERVAL {k} MONTH AND DATE '{hi}' - INTERVAL {k} MONTH"
                for lo, hi in shifts
                for k in ind.as_of_months
            )
            dates = ind.render(ind.as_of_dates, self.indicator_params(ind))
            parts.add(f"SELECT patient_id FROM ({dates}) WHERE {near}")
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE _as_of_patients AS SELECT DISTINCT patient_id FROM ("
            + " UNION ALL ".join(sorted(parts))
            + ") WHERE patient_id NOT IN (SELECT patient_id FROM touched)"
        )
        return self._count("_as_of_patients")

    def results(
        self,
        strata: Sequence[str] = ("county", "township", "village", "doctor", "sex", "age-band"),
        suppress_below: int = 10,
        periods: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        from kangqiao.analytics.indicators.aggregate import aggregate

        return aggregate(self, strata, suppress_below, periods)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> IndicatorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- views -----------------------------------------------------------------------------
    def _stage(self, files: list[Path]) -> list[str]:
        """Run every view over ``files`` into ``n_<view>``; the views that got rows."""
        self._run_views(files, "TEMP TABLE n_")
        return [name for name in self.views if self._count(f"n_{name}")]

    def _run_views(self, files: list[Path], into: str) -> None:
        """``CREATE OR REPLACE {into}<view>`` for every view over ``files``. The views of
        one resource type share one parse of its files (the Observation file, the largest,
        feeds both ``observation`` and ``blood_pressure``): the documents are parsed once
        into a temporary table holding the elements any of them reads.

        Patient ids are numbered view by view for a full build (``TABLE v_``); a refresh's
        few rows are numbered together at the end (two reads of the keys, not two a view)."""
        by_type: dict[str, list[str]] = {}
        for name in self.views:
            by_type.setdefault(self._compiled[name].view.resource, []).append(name)
        waiting: list[str] | None = [] if into.startswith("TEMP") else None
        for rtype, names in by_type.items():
            mine = [str(f) for f in files if resource_type_of(f) in (rtype, None)]
            # Parquet needs no shared parse: each view reads the columns it needs.
            parse = mine and len(names) > 1 and not all(map(is_parquet, mine))
            shared = self._shared_structure(names) if parse else None
            if shared is None:
                for name in names:
                    self._store_view(into, name, self._view_sql(name, files), waiting)
                continue
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE _parsed AS SELECT resource FROM "
                f"{struct_source(mine, shared)} WHERE resource.\"resourceType\" = {_sql_str(rtype)}"
            )
            for name in names:
                sql = self._compiled[name].sql_parsed("_parsed")
                self._store_view(into, name, sql, waiting)
            self.con.execute("DROP TABLE _parsed")
        if waiting:
            self._number_views(into, waiting)

    def _store_view(self, into: str, name: str, sql: str, waiting: list[str] | None) -> None:
        """``CREATE OR REPLACE {into}<name>`` from the view's rows ``sql``, its patient ids
        replaced by their numbers, now or (``waiting``) by :meth:`_number_views` later."""
        if not self._patient_keyed(name):
            self.con.execute(f"CREATE OR REPLACE {into}{name} AS {sql}")
            return
        # '' stands for "no patient" so that such rows still take part in refreshes.
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE _raw_{name} AS SELECT * REPLACE "
            f"(coalesce(patient_id, '') AS patient_id) FROM ({sql})"
        )
        if waiting is None:
            self._number_views(into, [name])
        else:
            waiting.append(name)

    def _number_views(self, into: str, names: list[str]) -> None:
        """``{into}<name>`` from ``_raw_<name>`` with the patient ids as numbers, giving the
        ids not numbered yet the next numbers."""
        ids = "SELECT DISTINCT patient_id FROM (" + " UNION ALL ".join(
            f"SELECT patient_id FROM _raw_{n}" for n in names
        ) + ")"
        self.con.execute(
            f"INSERT INTO {PATIENT_KEYS} SELECT r.patient_id, "
            f"(SELECT coalesce(max(patient_no), 0) FROM {PATIENT_KEYS}) + row_number() OVER () "
            f"FROM ({ids}) r ANTI JOIN {PATIENT_KEYS} k ON k.patient_id = r.patient_id"
        )
        keys = PATIENT_KEYS
        if len(names) > 1:  # the keys of these rows only: each view joins a small table
            keys = "_keys"
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE _keys AS SELECT k.* FROM {PATIENT_KEYS} k "
                f"SEMI JOIN ({ids}) r ON r.patient_id = k.patient_id"
            )
        for name in names:
            self.con.execute(
                f"CREATE OR REPLACE {into}{name} AS SELECT r.* REPLACE "
                f"(k.patient_no AS patient_id) FROM _raw_{name} r "
                f"JOIN {keys} k ON k.patient_id = r.patient_id"
            )
            self.con.execute(f"DROP TABLE _raw_{name}")
        self.con.execute("DROP TABLE IF EXISTS _keys")

    def _shared_structure(self, names: list[str]) -> dict[str, object] | None:
        merged: object = {}
        for name in names:
            structure = self._compiled[name].structure()
            merged = None if structure is None else merge_structures(merged, structure)
            if merged is None:
                return None
        return merged if isinstance(merged, dict) else None

    def _upsert_and_slice(self, staged: list[str]) -> None:
        """Upsert the staged rows (``n_<view>``), find the ``touched`` patients and copy
        their rows into ``t_<view>``. The rows a staged row replaces are found by id first
        (a read of the id column): a resource moved to another patient touches the patient
        it left too, so the touched patients are known before any slice is copied."""
        keyed = [n for n in self.views if self._patient_keyed(n)]
        new = [n for n in keyed if n in staged]
        for name in new:
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE _gone_{name} AS SELECT rowid AS view_row, "
                f"patient_id FROM main.v_{name} WHERE id IN (SELECT id FROM n_{name})"
            )
        ids = [f"SELECT patient_id FROM {t}{n}" for n in new for t in ("n_", "_gone_")]
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE touched AS SELECT DISTINCT patient_id FROM ("
            + (" UNION ALL ".join(ids) or "SELECT NULL::INTEGER AS patient_id WHERE FALSE")
            + ")"
        )
        if "encounter" in new:
            self._track_last_day()
        for name in new:
            self.con.execute(
                f"DELETE FROM v_{name} WHERE rowid IN (SELECT view_row FROM _gone_{name})"
            )
            self.con.execute(f"INSERT INTO v_{name} SELECT * FROM n_{name}")
            self.con.execute(f"DROP TABLE _gone_{name}")
        for name in keyed:
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE t_{name} AS SELECT * FROM main.v_{name} "
                "WHERE patient_id IN (SELECT patient_id FROM touched)"
            )
        self._upsert([n for n in self.views if n not in keyed])
        for name in new:
            self.con.execute(f"DROP TABLE n_{name}")

    def _upsert(self, names: Iterable[str] | None = None) -> None:
        for name in self.views if names is None else names:
            self.con.execute(f"DELETE FROM v_{name} WHERE id IN (SELECT id FROM n_{name})")
            self.con.execute(f"INSERT INTO v_{name} SELECT * FROM n_{name}")
            self.con.execute(f"DROP TABLE n_{name}")

    def _patient_keyed(self, name: str) -> bool:
        return any(c.name == "patient_id" for c in self._compiled[name].columns)

    def _view_sql(self, name: str, files: list[Path]) -> str:
        compiled = self._compiled[name]
        rtype = compiled.view.resource
        mine = [str(f) for f in files if resource_type_of(f) in (rtype, None)]
        if mine:
            return compiled.sql_files(mine)
        cols = ", ".join(f'CAST(NULL AS {c.sql_type}) AS "{c.name}"' for c in compiled.columns)
        return f"SELECT {cols} WHERE FALSE"

    # --- binding: the names the catalogue's SQL reads -----------------------------------------
    def _bind(self, patients: str | None) -> None:
        """Point the plain names (``encounter``, ``visit`` ...) at the stored tables, limited
        to the patients in the table ``patients`` (``touched`` during an incremental
        refresh), or not limited (None).

        The touched patients' view rows were copied into small temporary tables
        (``t_<view>``, by :meth:`_upsert_and_slice`): the derived tables and every
        indicator's units query read those instead of each scanning the county's full view
        tables again."""
        only = f" WHERE patient_id IN (SELECT patient_id FROM {patients})" if patients else ""
        for name in self.views:
            source = f"main.v_{name}"
            if patients and self._patient_keyed(name):
                source = f"t_{name}" if patients == "touched" else source + only
            self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {source}")
        have = self._table_names()
        for name in derived.DIMENSION_TABLES:
            if f"d_{name}" in have:
                self.con.execute(
                    f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM main.d_{name}"
                )
        for name in derived.PATIENT_TABLES:
            if f"d_{name}" in have:
                self._bind_derived(name, patients, f"temp.td_{name}" in have)

    def _bind_derived(self, name: str, patients: str | None, sliced: bool = False) -> None:
        """Point ``name`` at ``d_<name>``: all of it, its rows of the patients in the table
        ``patients``, or (``sliced``) the touched patients' rows kept in ``td_<name>``."""
        if patients == "touched" and sliced:
            source = f"td_{name}"
        elif patients:
            source = f"main.d_{name} WHERE patient_id IN (SELECT patient_id FROM {patients})"
        else:
            source = f"main.d_{name}"
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {source}")

    # --- derived tables and facts ----------------------------------------------------------
    def _rebuild(self) -> None:
        self._write_periods()
        known = {f"d_{n}" for n in (*derived.DIMENSION_TABLES, *derived.PATIENT_TABLES)}
        for stale in sorted(self._table_names()):
            if stale.startswith("d_") and stale not in known:  # a derived table no longer defined
                self.con.execute(f"DROP TABLE {stale}")
        self._bind(None)
        for name, sql in derived.DIMENSION_TABLES.items():
            self.con.execute(f"CREATE OR REPLACE TABLE d_{name} AS {sql}")
            self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM main.d_{name}")
        for name in derived.PATIENT_TABLES:
            self.con.execute(f"DROP TABLE IF EXISTS d_{name}")
        self._derive_patients(touched=False)
        self.con.execute(f"CREATE OR REPLACE TABLE s_facts ({FACT_COLUMNS})")
        self._compute_facts(self.catalogue, None, None, into="s_facts")
        cells.rebuild(self)

    def _derive_patients(self, touched: bool) -> None:
        """The derived patient tables, of every patient or of the ``touched`` ones. The
        touched patients' rows are also kept in ``td_<name>``, which the refresh's queries
        read instead of picking them out of the county's ``d_<name>`` again."""
        self._bind("touched" if touched else None)
        have = self._table_names()
        for name, sql in derived.PATIENT_TABLES.items():
            if not touched or f"d_{name}" not in have:
                self.con.execute(f"CREATE OR REPLACE TABLE d_{name} AS {sql}")
                self._bind_derived(name, None)
                continue
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE td_{name} AS {sql}")
            self.con.execute(
                f"DELETE FROM d_{name} WHERE patient_id IN (SELECT patient_id FROM touched)"
            )
            self.con.execute(f"INSERT INTO d_{name} SELECT * FROM td_{name}")
            self._bind_derived(name, "touched", sliced=True)  # dim reads mgmt

    def indicator_params(self, ind: Indicator) -> dict[str, Any]:
        """Overrides for ``ind``: ``params[<indicator id>]`` or a bare parameter name."""
        flat = {k: v for k, v in self.params.items() if k in ind.parameters}
        return {**flat, **self.params.get(ind.id, {})}

    def _replace_facts(self, scopes: Sequence[FactScope], old_dim: str) -> None:
        """Replace the facts of ``scopes`` and change the cells by the difference (old
        facts subtracted with the strata of ``old_dim``, the ones they were counted under).

        The new facts are computed into ``_new_facts``; one full outer join of them with
        the scopes' old facts (``s_facts`` scanned once) keeps the pairs that differ in
        ``_changed``, which gives the cells to subtract and to add, the rows to delete and
        the rows to append."""
        delta = cells.Delta(self)
        # The scopes' patients, one row each with a flag per scope, joined to s_facts: one
        # hash join over the table instead of a semi-join per scope.
        flags = ", ".join(f"bool_or(scope = {i}) AS in_{i}" for i in range(len(scopes)))
        listed = " UNION ALL ".join(
            f"SELECT patient_id, {i} AS scope FROM {s.patients}" for i, s in enumerate(scopes)
        )
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE _scope AS SELECT patient_id, {flags} "
            f"FROM ({listed}) GROUP BY patient_id"
        )
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE _new_facts ({FACT_COLUMNS})")
        for scope in scopes:
            self._compute_facts(scope.indicators, scope.patients, scope.periods, "_new_facts")
        # The new facts are the scopes' patients': their strata from their rows of d_dim
        # (a small build side, not the whole county's).
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE _new_dim AS SELECT d.* FROM main.d_dim d "
            "JOIN _scope p ON d.patient_id = p.patient_id"
        )
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE _restrata AS "
            f"SELECT patient_id FROM (SELECT * FROM {old_dim} EXCEPT SELECT * FROM _new_dim) "
            f"UNION SELECT patient_id FROM (SELECT * FROM _new_dim EXCEPT SELECT * FROM {old_dim})"
        )
        # Most replaced facts come out the same (a visit changes its month and year, not
        # the other periods): an old fact equal to its new one, of a patient whose strata
        # did not change, adds nothing to the cells and stays in s_facts. Only the others
        # are deleted, summed into the delta and appended (a million residents' day:
        # 12,278 of 926,244 old facts and 24,079 of 938,045 new ones).
        where = " OR ".join(f"(p.in_{i} AND {self._scope_sql(s)})" for i, s in enumerate(scopes))
        old = (
            "SELECT f.rowid AS fact_row, f.* FROM s_facts f "
            f"JOIN _scope p ON f.patient_id = p.patient_id WHERE {where}"
        )
        cols = ("num", "den", "vals")
        same = " AND ".join(f"o.{c} IS NOT DISTINCT FROM n.{c}" for c in cols)
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE _changed AS SELECT o.fact_row, "
            + ", ".join(f"o.{c} AS old_{c}, n.{c} AS new_{c}" for c in cols)
            + ", n.indicator_id IS NOT NULL AS added, "
            "coalesce(o.indicator_id, n.indicator_id) AS indicator_id, "
            "coalesce(o.patient_id, n.patient_id) AS patient_id, "
            "coalesce(o.period, n.period) AS period "
            f"FROM ({old}) o FULL JOIN _new_facts n ON n.indicator_id = o.indicator_id "
            "AND n.patient_id = o.patient_id AND n.period = o.period "
            f"WHERE o.fact_row IS NULL OR n.indicator_id IS NULL OR NOT ({same}) "
            "OR o.patient_id IN (SELECT patient_id FROM _restrata)"
        )
        for side, sign, dim, only in (("old", -1, old_dim, "fact_row IS NOT NULL"),
                                      ("new", 1, "_new_dim", "added")):  # fmt: skip
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE _{side}_changed AS SELECT indicator_id, "
                f"patient_id, period, {side}_num AS num, {side}_den AS den, "
                f"{side}_vals AS vals FROM _changed WHERE {only}"
            )
            delta.record(f"_{side}_changed", sign, dim)
        self.con.execute(
            "DELETE FROM s_facts WHERE rowid IN "
            "(SELECT fact_row FROM _changed WHERE fact_row IS NOT NULL)"
        )
        self.con.execute("INSERT INTO s_facts SELECT * FROM _new_changed")
        delta.apply()
        for table in ("_new_facts", "_new_dim", "_scope", "_restrata", "_changed",
                      "_old_changed", "_new_changed"):  # fmt: skip
            self.con.execute(f"DROP TABLE {table}")

    def _scope_sql(self, scope: FactScope) -> str:
        """The condition on the facts of the scope's patients that selects ``scope``'s."""
        conds = ["TRUE"]
        if {i.id for i in scope.indicators} != {i.id for i in self.catalogue}:
            conds.append(f"indicator_id IN ({', '.join(_sql_str(i.id) for i in scope.indicators)})")
        if scope.periods is not None:
            conds.append(f"period IN ({', '.join(_sql_str(p) for p in scope.periods)})")
        return " AND ".join(conds)

    def _compute_facts(
        self,
        indicators: Sequence[Indicator],
        patients: str | None,
        periods: Sequence[str] | None,
        into: str,
    ) -> None:
        """Insert into ``into`` the facts of ``indicators`` of the patients in the table
        ``patients`` (None: all) in ``periods`` (None: all)."""
        self._bind(patients)
        only = ""
        if periods is not None:
            only = " AND period IN (" + ", ".join(_sql_str(p) for p in periods) + ")"
        # Indicators with the same units (the five HEARTS states, the contract key
        # groups) share one evaluation of the units query, kept in _units; one INSERT per
        # group (a refresh runs ~300 statements, each with a fixed cost).
        groups: dict[tuple[str, tuple[str, ...]], list[Indicator]] = {}
        for ind in indicators:
            units = ind.render(ind.units, self.indicator_params(ind))
            groups.setdefault((units, ind.period_types), []).append(ind)
        for (units, kinds), members in groups.items():
            listed = ", ".join(_sql_str(k) for k in kinds)
            self.con.execute(
                "CREATE OR REPLACE TEMP VIEW periods AS "
                f"SELECT * FROM main.s_periods WHERE kind IN ({listed}){only}"
            )
            source = f"({units}) AS _units"
            if len(members) > 1:
                self.con.execute(f"CREATE OR REPLACE TEMP TABLE _units AS {units}")
                source = "_units"
            selects = " UNION ALL ".join(self._fact_sql(ind, source) for ind in members)
            self.con.execute(f"INSERT INTO {into} {selects}")
        self.con.execute("DROP TABLE IF EXISTS _units")

    def _fact_sql(self, ind: Indicator, units: str) -> str:
        """The facts of ``ind`` from its ``units`` rows: one per patient and period."""
        p = self.indicator_params(ind)
        num = f"coalesce(CAST(({ind.render(ind.numerator, p)}) AS DOUBLE), 0)"
        den = (
            "NULL::DOUBLE"
            if ind.denominator is None
            else f"sum(coalesce(CAST(({ind.render(ind.denominator, p)}) AS DOUBLE), 0))"
        )
        if ind.value is not None:
            value = f"CAST(({ind.render(ind.value, p)}) AS DOUBLE)"
            vals = f"list({value}) FILTER (WHERE {value} IS NOT NULL AND {num} > 0)"
        else:
            vals = "NULL::DOUBLE[]"
        return (
            f"SELECT {_sql_str(ind.id)}, patient_id, period, sum({num}), "
            f"{den}, {vals} FROM {units} GROUP BY patient_id, period"
        )

    # --- periods and the reference day -----------------------------------------------------
    def data_as_of(self) -> dt.date | None:
        """The reference day: the override, else the latest encounter day in the data."""
        override = self._meta("as_of_override")
        if override:
            return dt.date.fromisoformat(override)
        known = self._meta(LAST_DAY)
        if known is not None:
            return dt.date.fromisoformat(known) if known else None
        row = self.con.execute("SELECT max(local_day(start)) FROM main.v_encounter").fetchone()
        last = row[0] if row and row[0] is not None else None
        self._set_meta(LAST_DAY, last.isoformat() if last else "")
        return last

    def _track_last_day(self) -> None:
        """Before the staged encounters replace the stored ones: keep the latest
        encounter day known without a scan of every encounter, unless a replaced encounter
        was on that day (then it is found again by :meth:`data_as_of`)."""
        known = self._meta(LAST_DAY)
        row = self.con.execute(
            "SELECT (SELECT max(local_day(start)) FROM main.v_encounter WHERE rowid IN "
            "(SELECT view_row FROM _gone_encounter)), "
            "(SELECT max(local_day(start)) FROM n_encounter)"
        ).fetchone()
        gone, added = row if row else (None, None)
        last = dt.date.fromisoformat(known) if known else None
        if known is None or (gone is not None and last is not None and gone >= last):
            self.con.execute("DELETE FROM s_meta WHERE key = ?", [LAST_DAY])
        elif added is not None and (last is None or added > last):
            self._set_meta(LAST_DAY, added.isoformat())

    def _write_periods(self) -> None:
        years = json.loads(self._meta("years") or "[]")
        as_of = self.data_as_of()
        rows: list[tuple[str, str, dt.date, dt.date, dt.date]] = []
        for y in years:
            end = dt.date(y, 12, 31)
            rows.append((str(y), "year", dt.date(y, 1, 1), end, min(end, as_of or end)))
            for m in range(1, 13):
                start = dt.date(y, m, 1)
                if as_of is not None and start > as_of:
                    break  # no months after the data ends: they would only repeat it
                m_end = (dt.date(y + m // 12, m % 12 + 1, 1)) - dt.timedelta(days=1)
                rows.append((f"{y}-{m:02d}", "month", start, m_end, min(m_end, as_of or m_end)))
        self.con.execute(
            "CREATE OR REPLACE TABLE s_periods (period VARCHAR, kind VARCHAR, "
            "start_date DATE, end_date DATE, as_of DATE)"
        )
        if rows:
            self.con.executemany("INSERT INTO s_periods VALUES (?, ?, ?, ?, ?)", rows)

    def _periods_snapshot(self) -> list[tuple[Any, ...]]:
        if not self._has_table("s_periods"):
            return []
        return [
            tuple(r) for r in self.con.execute("SELECT * FROM s_periods ORDER BY period").fetchall()
        ]

    # --- small helpers ---------------------------------------------------------------------------
    def _has_table(self, name: str) -> bool:
        return name in self._table_names()

    def _table_names(self) -> set[str]:
        """The stored tables' names, and the temporary ones' prefixed ``temp.``."""
        rows = self.con.execute("SELECT temporary, table_name FROM duckdb_tables()").fetchall()
        return {("temp." if temporary else "") + name for temporary, name in rows}

    def _count(self, table: str) -> int:
        row = self.con.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else 0

    def _meta(self, key: str) -> str | None:
        if not self._has_table("s_meta"):
            return None
        row = self.con.execute("SELECT value FROM s_meta WHERE key = ?", [key]).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self.con.execute("INSERT OR REPLACE INTO s_meta VALUES (?, ?)", [key, value])


def parse_years(period: str | int | Sequence[str | int]) -> list[int]:
    """``2026``, ``"2026"``, ``"2025,2026"`` or ``[2025, 2026]`` -> years."""
    items = (
        period.split(",")
        if isinstance(period, str)
        else ([period] if isinstance(period, int) else list(period))
    )
    try:
        return sorted({int(str(p).strip()) for p in items})
    except ValueError:
        raise ValueError(f"period must be a year or a list of years, not {period!r}") from None


def compute_indicators(
    input_paths: Iterable[str | Path],
    period: str | int | Sequence[str | int],
    strata: Sequence[str] = ("county", "township", "village", "doctor", "sex", "age-band"),
    suppress_below: int = 10,
    *,
    params: dict[str, Any] | None = None,
    as_of: dt.date | None = None,
    catalogue: Sequence[Indicator] | None = None,
) -> list[dict[str, Any]]:
    """Every catalogue indicator for ``period`` (a year: the year and its months) per
    stratum, as rows; counts below ``suppress_below`` suppressed (0 turns it off)."""
    with IndicatorStore(catalogue=catalogue, params=params) as store:
        store.load(input_paths, parse_years(period), as_of=as_of)
        return store.results(strata, suppress_below)
