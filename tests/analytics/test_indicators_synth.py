"""The catalogue on a synthetic county: agreement with the chronic rules, strata that add
up, and incremental refresh equal to a full recompute."""

from __future__ import annotations

import datetime as dt
import shutil
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from kangqiao.analytics.indicators import IndicatorStore, cells, load_catalogue
from kangqiao.analytics.indicators.engine import FACT_COLUMNS
from kangqiao.chronic.rules import (
    BloodPressure,
    Disease,
    FollowUpVisit,
    Patient,
    VisitMode,
    controlled_at_latest_visit,
    hearts_status,
    standardised_management,
)
from kangqiao.synth.generate import generate

STRATA = ("county", "township", "village", "doctor", "sex", "age-band")


@pytest.fixture(scope="module")
def county(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("county")
    generate(out, residents=2000, seed=7)
    return out


@pytest.fixture(scope="module")
def store(county: Path) -> Iterator[IndicatorStore]:
    s = IndicatorStore()
    s.load([county], [2025, 2026])
    yield s
    s.close()


def _read(folder: Path, rtype: str) -> list[dict[str, Any]]:
    path = folder / f"{rtype}.ndjson"
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


def _key(ref: dict[str, Any] | None) -> str | None:
    return None if not ref else str(ref.get("reference", "")).rsplit("/", 1)[-1]


def _visits(folder: Path) -> tuple[dict[str, list[tuple[str, FollowUpVisit]]], dict[str, Any]]:
    """FHIR -> the rules' plain values, independently of the SQL (the test oracle)."""
    readings: dict[str, dict[str, Any]] = defaultdict(dict)
    for o in _read(folder, "Observation"):
        enc = _key(o.get("encounter"))
        if enc is None or "device" in o:
            continue
        code = o["code"]["coding"][0]["code"]
        if code == "85354-9":
            comp = {
                c["code"]["coding"][0]["code"]: c["valueQuantity"]["value"] for c in o["component"]
            }
            readings[enc]["bp"] = BloodPressure(comp["8480-6"], comp["8462-4"])
        elif code == "14771-0":
            readings[enc]["glucose"] = o["valueQuantity"]["value"]
    visits: dict[str, list[tuple[str, FollowUpVisit]]] = defaultdict(list)
    for e in _read(folder, "Encounter"):
        kind = e["type"][0]["coding"][0]["code"]
        if kind not in ("htn-followup", "dm-followup") or e["status"] != "finished":
            continue
        mode = {"HH": VisitMode.HOME, "VR": VisitMode.PHONE}.get(
            e["class"]["code"], VisitMode.CLINIC
        )
        r = readings.get(e["id"], {})
        disease = Disease.HYPERTENSION if kind == "htn-followup" else Disease.DIABETES_T2
        start = e["period"]["start"]
        visits[_key(e["subject"]) or ""].append(
            (
                start,
                FollowUpVisit(
                    dt.date.fromisoformat(start[:10]),
                    disease,
                    mode,
                    bp=r.get("bp"),
                    fasting_glucose=r.get("glucose"),
                ),
            )
        )
    births = {p["id"]: p.get("birthDate") for p in _read(folder, "Patient")}
    return visits, births


def _facts(store: IndicatorStore, indicator: str, period: str) -> dict[str, tuple[float, float]]:
    rows = store.con.execute(
        "SELECT k.patient_id, num, den FROM s_facts f JOIN s_patient_keys k "
        "ON k.patient_no = f.patient_id WHERE indicator_id = ? AND period = ?",
        [indicator, period],
    ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


@pytest.mark.parametrize("year", [2025, 2026])
def test_nbphs_indicators_agree_with_the_rules(
    county: Path, store: IndicatorStore, year: int
) -> None:
    visits, births = _visits(county)
    enrolled: dict[tuple[str, Disease], dt.date] = {}
    for ep in _read(county, "EpisodeOfCare"):
        kind = ep["type"][0]["coding"][0]["code"]
        if kind in ("htn-management", "dm-management"):
            d = Disease.HYPERTENSION if kind == "htn-management" else Disease.DIABETES_T2
            key = (_key(ep["patient"]) or "", d)
            start = dt.date.fromisoformat(ep["period"]["start"][:10])
            enrolled[key] = min(start, enrolled.get(key, start))
    checked = 0
    for disease, std_id, ctl_id in [
        (Disease.HYPERTENSION, "nbphs-htn-standardised-management", "nbphs-htn-bp-control"),
        (Disease.DIABETES_T2, "nbphs-dm-standardised-management", "nbphs-dm-glucose-control"),
    ]:
        std, ctl = _facts(store, std_id, str(year)), _facts(store, ctl_id, str(year))
        expected_den = {
            p for (p, d), start in enrolled.items() if d is disease and start.year <= year
        }
        assert set(std) == expected_den == set(ctl)
        for pid in expected_den:
            mine = sorted(visits.get(pid, []), key=lambda sv: sv[0])
            vs = [v for _, v in mine]
            rule = standardised_management(vs, disease, year, enrolled[(pid, disease)])
            assert std[pid][0] == rule.standardised, pid
            if births.get(pid) is None:  # an injected defect: the rules need a birth date
                continue
            patient = Patient(dt.date.fromisoformat(births[pid]))
            # Same-day ties: the SQL takes the latest time; max() takes the first maximum.
            decision = controlled_at_latest_visit(patient, list(reversed(vs)), disease, year)
            assert ctl[pid][0] == decision.code.endswith(".controlled"), (pid, decision)
            checked += 1
    assert checked > 200


def test_hearts_cohort_agrees_with_the_rules(county: Path, store: IndicatorStore) -> None:
    visits, _ = _visits(county)
    as_of = store.data_as_of()
    assert as_of is not None
    states = {}
    for code in ("controlled", "uncontrolled", "visit-no-bp", "missed-visit", "lost-to-follow-up"):
        for pid, (num, den) in _facts(store, f"hearts-{code}", "2026").items():
            assert den == 1
            if num:
                assert pid not in states
                states[pid] = code
    registered = {}
    for ep in _read(county, "EpisodeOfCare"):
        if ep["type"][0]["coding"][0]["code"] == "htn-management":
            registered[_key(ep["patient"])] = dt.date.fromisoformat(ep["period"]["start"][:10])
    for pid, reg in registered.items():
        vs = [v for _, v in sorted(visits.get(pid or "", []), key=lambda sv: sv[0])]
        code = hearts_status(vs, reg, as_of).code.removeprefix("hearts.")
        assert states.get(pid or "", "recently-registered") == code, pid
    assert len(set(states.values())) >= 4


@pytest.mark.parametrize("year", [2025, 2026])
def test_elderly_health_management_counts_the_checks_of_residents_aged_65(
    county: Path, store: IndicatorStore, year: int
) -> None:
    """NBPHS 3rd ed., 老年人健康管理服务规范, 工作指标: residents aged 65+ checked in the year
    ÷ residents aged 65+; counted here straight from the NDJSON."""
    end = dt.date(year, 12, 31)
    elderly = set()
    for p in _read(county, "Patient"):
        resident = any(
            i.get("system") == "https://kangqiao.example/fhir/sid/health-record"
            for i in p.get("identifier", [])
        )
        birth = p.get("birthDate")
        if resident and birth and len(birth) == 10:
            b = dt.date.fromisoformat(birth)
            if end.year - b.year - ((end.month, end.day) < (b.month, b.day)) >= 65:
                elderly.add(p["id"])
    checked = {
        _key(e["subject"])
        for e in _read(county, "Encounter")
        if e["type"][0]["coding"][0]["code"] == "elderly-health-check"
        and e["status"] not in ("cancelled", "entered-in-error")
        and e["period"]["start"][:4] == str(year)
    }
    facts = _facts(store, "nbphs-elderly-health-management", str(year))
    assert set(facts) == elderly
    assert {pid for pid, (num, _) in facts.items() if num} == elderly & checked
    rate = len(elderly & checked) / len(elderly)
    # The synthetic county checks 68 % of them a year (a year of history ends on 1 November).
    assert (0.55 if year == 2025 else 0.45) < rate < 0.8, rate


def test_strata_add_up_to_the_county(store: IndicatorStore) -> None:
    rows = store.results(STRATA, suppress_below=0)
    county = {(r["indicator_id"], r["period"]): r for r in rows if r["stratum"] == "county"}
    sums: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for r in rows:
        if r["stratum"] != "county" and r["numerator"] is not None:
            s = sums[(r["indicator_id"], r["period"], r["stratum"])]
            s[0] += r["numerator"]
            s[1] += r["denominator"] or 0
    assert len(county) >= len(load_catalogue()) * 2
    for (ind, period, _stratum), (num, den) in sums.items():
        c = county[(ind, period)]
        assert num == pytest.approx(c["numerator"]), (ind, period, _stratum)
        assert den == pytest.approx(c["denominator"] or 0), (ind, period, _stratum)


def _dated(r: dict[str, Any]) -> str | None:
    for path in (
        ("period", "start"),
        ("effectiveDateTime",),
        ("authoredOn",),
        ("sent",),
        ("issued",),
        ("created",),
        ("recordedDate",),
    ):
        v: Any = r
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        if isinstance(v, str):
            return v[:10]
    return None


def _split(county: Path, base: Path, new: Path, since: str) -> int:
    """Everything dated ``since`` or later goes to ``new`` (a day's data); plus a resident
    who moved village and a brand-new resident."""
    base.mkdir()
    new.mkdir()
    moved = 0
    for f in sorted(county.glob("*.ndjson")):
        old_lines, new_lines = [], []
        for line in f.read_bytes().splitlines():
            r = orjson.loads(line)
            day = _dated(r)
            (new_lines if day is not None and day >= since else old_lines).append(line)
            if r["resourceType"] == "Patient" and r["id"] in ("pat-000002", "pat-000003"):
                if r["id"] == "pat-000003":  # registered today
                    old_lines.pop()
                r = dict(r, address=[], gender="male")  # changed record
                new_lines.append(orjson.dumps(r))
                moved += 1
        (base / f.name).write_bytes(b"\n".join(old_lines) + b"\n")
        (new / f.name).write_bytes(b"\n".join(new_lines) + (b"\n" if new_lines else b""))
    return moved


def _normalised(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (
            r["indicator_id"],
            r["period"],
            r["stratum"],
            r["stratum_id"],
            r["numerator"],
            r["denominator"],
            None if r["rate"] is None else round(r["rate"], 9),
        )
        for r in rows
    )


def test_incremental_refresh_equals_full_recompute(county: Path, tmp_path: Path) -> None:
    with IndicatorStore() as full:
        full.load([county], [2026])
        last = full.data_as_of()
    assert last is not None
    base, new = tmp_path / "base", tmp_path / "new"
    assert _split(county, base, new, last.isoformat()) == 2
    with IndicatorStore() as full:
        full.load([base, new], [2026])
        expected = _normalised(full.results(STRATA, suppress_below=0))
    with IndicatorStore(tmp_path / "state.duckdb") as inc:
        inc.load([base], [2026])
        assert inc.data_as_of() != last  # the new day moves the reference day (HEARTS)
    with IndicatorStore(tmp_path / "state.duckdb") as inc:  # reopened from the file
        info = inc.refresh([new])
        assert info["mode"] == "incremental"
        assert 0 < info["patients"] < 500
        # HEARTS redone for the patients with a date near the old or the new reference day
        # only, not for all the managed patients.
        assert 0 < info["as_of_patients"] < 100
        got = _normalised(inc.results(STRATA, suppress_below=0))
        # The cells kept by deltas are the ones a recompute from the facts gives.
        kept = _cells(inc, "SELECT * FROM s_cells")
        assert kept == _cells(inc, cells.cells_sql())
        assert len(kept) > 1000
    assert got == expected


def test_cell_deltas_of_more_than_a_row_group(tmp_path: Path) -> None:
    """A refresh of a large county subtracts and adds more cells than one DuckDB row group
    (122,880 rows) in its transaction: every one of them must reach the kept cells
    (DuckDB 2.0.0 hides a first large INSERT into a table created empty by CREATE AS,
    which is how the delta was once kept)."""
    n = 130_000
    with IndicatorStore(tmp_path / "state.duckdb") as s:
        con = s.con
        con.execute(
            "CREATE TABLE s_periods AS SELECT '2026' AS period, 'year' AS kind, "
            "DATE '2026-01-01' AS start_date, DATE '2026-12-31' AS end_date, "
            "DATE '2026-12-31' AS as_of"
        )
        con.execute(  # one doctor per patient: one cell per patient
            "CREATE TABLE d_dim AS SELECT i::INTEGER AS patient_id, 'female' AS gender, "
            "DATE '1970-01-01' AS birth_date, TRUE AS is_resident, 't' AS township_id, "
            f"'v' AS village_id, 'd' || i AS doctor_id FROM range({n}) r(i)"
        )
        con.execute(f"CREATE TABLE s_facts ({FACT_COLUMNS})")
        con.execute(
            f"INSERT INTO s_facts SELECT 'x', i, '2026', 1, 1, NULL FROM range({n}) r(i)"
        )
        cells.rebuild(s)
        con.execute("BEGIN TRANSACTION")
        con.execute("CREATE TEMP TABLE _old AS SELECT * FROM s_facts")
        con.execute("CREATE TEMP TABLE _new AS SELECT * REPLACE (0.0 AS num) FROM s_facts")
        delta = cells.Delta(s)
        delta.record("_old", -1)
        delta.record("_new", 1)
        con.execute("DELETE FROM s_facts")
        con.execute("INSERT INTO s_facts SELECT * FROM _new")
        delta.apply()
        con.execute("COMMIT")
        kept = con.execute("SELECT count(*), sum(n), sum(num) FROM s_cells").fetchone()
        assert kept == (n, n, 0)


def _cells(store: IndicatorStore, sql: str) -> list[tuple[Any, ...]]:
    rows = store.con.execute(
        f"SELECT indicator_id, period, township_id, village_id, doctor_id, sex, age_band, n, "
        f"round(num, 6), round(den, 6), list_sort(vals) FROM ({sql})"
    ).fetchall()
    return sorted(tuple(r) for r in rows)


def test_organisation_change_falls_back_to_full_rebuild(county: Path, tmp_path: Path) -> None:
    new = tmp_path / "new"
    new.mkdir()
    shutil.copy(county / "Organization.ndjson", new / "Organization.ndjson")
    with IndicatorStore() as s:
        s.load([county], [2026])
        before = _normalised(s.results(("county", "village"), suppress_below=0))
        assert s.refresh([new])["mode"] == "full"
        assert _normalised(s.results(("county", "village"), suppress_below=0)) == before
