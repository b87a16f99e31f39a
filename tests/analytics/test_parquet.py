"""Typed Parquet as the views' input: the conversion keeps every element, and every view,
the catalogue's and the differential ones, gives the same rows from Parquet as from NDJSON;
the indicators built from Parquet equal those built from NDJSON."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from typer.testing import CliRunner

from kangqiao.analytics import compile_view, run_view_files
from kangqiao.analytics.cli import app
from kangqiao.analytics.indicators import STRATA, IndicatorStore
from kangqiao.analytics.indicators.catalogue import load_views
from kangqiao.analytics.indicators.engine import input_files
from kangqiao.analytics.parquet import ndjson_to_parquet
from kangqiao.analytics.reference import reference_run
from kangqiao.analytics.sources import json_source
from kangqiao.synth.generate import generate
from tests.analytics.conftest import same
from tests.analytics.test_differential import VIEWS, observation, patient
from tests.analytics.test_files_and_cli import EXPECTED, RESOURCES, VIEW


def _write(folder: Path, resources: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    by_type: dict[str, list[bytes]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(orjson.dumps(r))
    for rtype, lines in by_type.items():
        (folder / f"{rtype}.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    return folder


def _numbers_as_floats(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _numbers_as_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_as_floats(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


ODD = [
    {"resourceType": "Patient", "id": "partial", "birthDate": "1950",
     "_birthDate": {"extension": [{"url": "http://example.org/estimated", "valueBoolean": True}]},
     "deceasedDateTime": "2026-03", "name": [{"given": ["A", "B"]}]},
    {"resourceType": "Patient", "id": "offset", "birthDate": "1950-02-28",
     "deceasedDateTime": "2026-03-01T23:59:59.123+08:00",
     "extension": [{"url": "u1", "valueInteger": 3}, {"url": "u2", "valueDecimal": 1.5},
                   {"url": "u3", "valueCodeableConcept": {"coding": [{"code": "x"}]}},
                   {"url": "u4", "extension": [{"url": "inner", "valueString": "深"}]}]},
    {"resourceType": "Observation", "id": "o", "status": "final",
     "effectivePeriod": {"start": "2026-01-01", "end": "2026-01-01T10:00:00Z"},
     "valueQuantity": {"value": 7.25, "unit": "mmol/L"},
     "component": [{"code": {"text": "a"}, "valueQuantity": {"value": 120}},
                   {"code": {"text": "b"}, "valueString": "n/a"}]},
]  # fmt: skip


def test_every_element_survives_the_conversion(tmp_path: Path) -> None:
    # A rare element only on the last of 25,000 lines: beyond DuckDB's default sample of
    # 20,480, so it is found only because the conversion infers from every line.
    filler = [{"resourceType": "Patient", "id": f"p{i}", "gender": "male"} for i in range(25_000)]
    rare = {"resourceType": "Patient", "id": "rare", "multipleBirthInteger": 2,
            "photo": [{"title": "x"}]}  # fmt: skip
    resources = ODD + filler + [rare]
    written = ndjson_to_parquet(input_files([_write(tmp_path / "in", resources)]), tmp_path / "pq")
    assert {p.name: n for p, n in written} == {"Observation.parquet": 1, "Patient.parquet": 25_003}
    con = duckdb.connect()
    files = [str(p) for p, _ in written]
    docs = [orjson.loads(d) for (d,) in con.execute(f"SELECT resource FROM {json_source(files)}")
            .fetchall()]  # fmt: skip
    key = lambda r: (r["resourceType"], r["id"])  # noqa: E731
    assert sorted(map(_numbers_as_floats, docs), key=key) == sorted(
        map(_numbers_as_floats, resources), key=key
    )
    # dates stay the text they were (not DuckDB timestamps in another zone or format)
    offset = next(d for d in docs if d["id"] == "offset")
    assert offset["deceasedDateTime"] == "2026-03-01T23:59:59.123+08:00"


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("index", range(len(VIEWS)))
def test_views_over_parquet_match_the_reference_evaluator(tmp_path: Path, seed: int,
                                                          index: int) -> None:  # fmt: skip
    rng = random.Random(seed)
    resources = [patient(rng, i) for i in range(40)] + [observation(rng, i) for i in range(40)]
    pq = tmp_path / "pq"
    ndjson_to_parquet(input_files([_write(tmp_path / "in", resources)]), pq)
    expected = reference_run(VIEWS[index], resources)
    got = run_view_files(VIEWS[index], [pq])
    assert isinstance(got, list)
    same(got, expected)


def test_whole_document_views_read_parquet(tmp_path: Path) -> None:
    """A view that returns elements whole (JSON mode) gets them without the empty fields
    the typed columns hold for the elements a document did not have."""
    view = {"resourceType": "ViewDefinition", "resource": "Patient", "status": "active",
            "select": [{"column": [{"name": "id", "path": "id"},
                                   {"name": "name", "path": "name", "collection": True},
                                   {"name": "ext", "path": "extension",
                                    "collection": True}]}]}  # fmt: skip
    pq = tmp_path / "pq"
    ndjson_to_parquet(input_files([_write(tmp_path / "in", ODD)]), pq)
    got = run_view_files(view, [pq])
    expected = run_view_files(view, [tmp_path / "in"])
    assert isinstance(got, list) and isinstance(expected, list)
    assert sorted(map(_numbers_as_floats, got), key=str) == sorted(
        map(_numbers_as_floats, expected), key=str
    )
    assert {"given": ["A", "B"]} in next(r for r in got if r["id"] == "partial")["name"]


def test_mixed_shapes_read_as_leniently_as_ndjson(tmp_path: Path) -> None:
    mixed = tmp_path / "in" / "mixed.ndjson"
    mixed.parent.mkdir()
    lines = [*RESOURCES, {"resourceType": "Basic", "id": "x", "gender": {"odd": 1},
                          "name": "not-a-list", "active": "maybe"}]  # fmt: skip
    mixed.write_bytes(b"\n".join(orjson.dumps(r) for r in lines) + b"\nnot json\n")
    written = ndjson_to_parquet([mixed], tmp_path / "pq")
    assert [(p.name, n) for p, n in written] == [("resources.parquet", 4)]
    got = run_view_files(VIEW, [tmp_path / "pq"])
    assert sorted(got, key=str) == EXPECTED  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def county(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("county")
    generate(out, residents=1500, seed=11)
    pq = tmp_path_factory.mktemp("parquet")
    ndjson_to_parquet(input_files([out]), pq)
    return out, pq


def test_catalogue_views_are_the_same_from_parquet(county: tuple[Path, Path]) -> None:
    ndjson, pq = county
    con = duckdb.connect()
    for name, view in load_views().items():
        compiled = compile_view(view)
        a = compiled.sql_files([str(f) for f in input_files([ndjson])])
        b = compiled.sql_files([str(f) for f in input_files([pq])])
        n = con.execute(f"SELECT count(*) FROM ({a})").fetchone()
        assert n and n[0] > 0, name
        for x, y in ((a, b), (b, a)):
            diff = con.execute(f"SELECT count(*) FROM ({x} EXCEPT ALL {y})").fetchone()
            assert diff == (0,), name


def test_indicators_from_parquet_equal_those_from_ndjson(county: tuple[Path, Path]) -> None:
    ndjson, pq = county
    results = []
    for source in (ndjson, pq):
        with IndicatorStore() as store:
            store.load([source], [2026])
            results.append(sorted(map(repr, store.results(STRATA, suppress_below=0))))
    assert len(results[0]) > 1000
    assert results[0] == results[1]


def test_cli_converts_and_runs_views_on_parquet(tmp_path: Path) -> None:
    folder = _write(tmp_path / "in", RESOURCES)
    runner = CliRunner()
    done = runner.invoke(app, ["to-parquet", "--input", str(folder), "--out", str(tmp_path / "pq")])
    assert done.exit_code == 0, done.output
    assert "Patient.parquet" in done.output
    view_file = tmp_path / "view.json"
    view_file.write_bytes(orjson.dumps(VIEW))
    ran = runner.invoke(app, ["run", str(view_file), "--input", str(tmp_path / "pq")])
    assert ran.exit_code == 0, ran.output
    assert ran.output.splitlines() == ["id,gender,active,n", "a,female,true,1", "b,male,,0"]
    missing = runner.invoke(app, ["to-parquet", "--input", str(tmp_path / "nope"),
                                  "--out", str(tmp_path / "x")])  # fmt: skip
    assert missing.exit_code == 2 and "input not found" in missing.output


@pytest.mark.spark
@pytest.mark.parametrize("index", range(len(VIEWS)))
def test_spark_reads_parquet_as_duckdb_does(tmp_path: Path, index: int,
                                            spark_session: Any) -> None:  # fmt: skip
    rng = random.Random(5)
    resources = [patient(rng, i) for i in range(30)] + [observation(rng, i) for i in range(30)]
    pq = tmp_path / "pq"
    ndjson_to_parquet(input_files([_write(tmp_path / "in", resources)]), pq)
    got = run_view_files(VIEWS[index], [pq], engine="spark")
    assert isinstance(got, list)
    same(got, reference_run(VIEWS[index], resources))


@pytest.mark.spark
def test_spark_catalogue_views_on_parquet(county: tuple[Path, Path], spark_session: Any) -> None:
    _, pq = county
    for name in ("patient", "blood_pressure", "encounter"):
        view = load_views()[name]
        spark_rows = run_view_files(view, [pq], engine="spark")
        duck_rows = run_view_files(view, [pq])
        assert isinstance(spark_rows, list) and isinstance(duck_rows, list)
        assert len(duck_rows) > 100
        same(spark_rows, duck_rows)


def _two_exports(tmp_path: Path) -> tuple[list[Path], list[dict[str, Any]]]:
    """The same type in two Parquet files of different schemas (two exports)."""
    rng = random.Random(9)
    first = [observation(rng, i) for i in range(20)]
    second = [{"resourceType": "Observation", "id": "late", "status": "amended",
               "subject": {"reference": "Patient/p1", "display": "only here"},
               "valueString": "text"}]  # fmt: skip
    a = ndjson_to_parquet(input_files([_write(tmp_path / "a", first)]), tmp_path / "pa")
    b = ndjson_to_parquet(input_files([_write(tmp_path / "b", second)]), tmp_path / "pb")
    return [a[0][0], b[0][0]], first + second


def test_several_parquet_files_of_one_type(tmp_path: Path) -> None:
    files, resources = _two_exports(tmp_path)
    for view in VIEWS:
        if view["resource"] == "Observation":
            same(run_view_files(view, files), reference_run(view, resources))  # type: ignore[arg-type]


@pytest.mark.spark
def test_spark_reads_several_parquet_files_of_one_type(tmp_path: Path,
                                                       spark_session: Any) -> None:  # fmt: skip
    files, resources = _two_exports(tmp_path)
    for view in VIEWS:
        if view["resource"] == "Observation":
            got = run_view_files(view, files, engine="spark")
            same(got, reference_run(view, resources))  # type: ignore[arg-type]
