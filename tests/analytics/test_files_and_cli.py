"""NDJSON inputs read directly by DuckDB, CSV / Parquet / NDJSON outputs, and the CLI."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from typer.testing import CliRunner

from kangqiao.analytics import run_view_files
from kangqiao.analytics.cli import app

VIEW: dict[str, Any] = {
    "resourceType": "ViewDefinition", "resource": "Patient", "status": "active",
    "select": [{"column": [{"name": "id", "path": "getResourceKey()"},
                           {"name": "gender", "path": "gender"},
                           {"name": "active", "path": "active", "type": "boolean"},
                           {"name": "n", "path": "name.count()", "type": "integer"}]}],
}  # fmt: skip
RESOURCES = [
    {"resourceType": "Patient", "id": "a", "gender": "female", "active": True,
     "name": [{"family": "X"}]},
    {"resourceType": "Patient", "id": "b", "gender": "male"},
    {"resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "t"}},
]  # fmt: skip
EXPECTED = [{"id": "a", "gender": "female", "active": True, "n": 1},
            {"id": "b", "gender": "male", "active": None, "n": 0}]  # fmt: skip


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """A bulk-export-like directory: one NDJSON file per resource type."""
    d = tmp_path / "export"
    d.mkdir()
    for rtype in ("Patient", "Observation"):
        lines = [orjson.dumps(r) for r in RESOURCES if r["resourceType"] == rtype]
        (d / f"{rtype}.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    return d


def test_rows_from_a_directory_and_from_files(export: Path) -> None:
    assert sorted(run_view_files(VIEW, [export]), key=str) == EXPECTED  # type: ignore[arg-type]
    got = run_view_files(VIEW, [export / "Patient.ndjson", export / "Observation.ndjson"])
    assert isinstance(got, list) and len(got) == 2


@pytest.mark.parametrize("name", ["Patient_2.ndjson", "Patients.ndjson", "Labs-0001.ndjson",
                                  "export.ndjson", "patient.ndjson"])  # fmt: skip
def test_a_file_is_skipped_only_when_its_name_is_another_resource_type(
    tmp_path: Path, name: str
) -> None:
    # Bulk exports name files by type; any other name may hold any type, so it is read
    lines = b"\n".join(orjson.dumps(r) for r in RESOURCES) + b"\n"
    (tmp_path / name).write_bytes(lines)
    (tmp_path / "Observation.ndjson").write_bytes(lines)  # Patients inside, but not read
    assert sorted(run_view_files(VIEW, [tmp_path]), key=str) == EXPECTED  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "ndjson"])
def test_output_formats(export: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"out.{fmt}"
    assert run_view_files(VIEW, [export], out=out, fmt=fmt) == 2
    reader = {"csv": "read_csv", "parquet": "read_parquet", "ndjson": "read_json"}[fmt]
    rows = duckdb.sql(f"SELECT * FROM {reader}('{out}') ORDER BY id").fetchall()
    assert rows == [("a", "female", True, 1), ("b", "male", None, 0)]


def test_empty_input_still_writes_the_columns(tmp_path: Path) -> None:
    empty = tmp_path / "none"
    empty.mkdir()
    out = tmp_path / "out.csv"
    assert run_view_files(VIEW, [empty], out=out, fmt="csv") == 0
    assert out.read_text().splitlines() == ["id,gender,active,n"]


def test_cli_prints_csv(export: Path, tmp_path: Path) -> None:
    view_file = tmp_path / "view.json"
    view_file.write_bytes(orjson.dumps(VIEW))
    result = CliRunner().invoke(app, ["run", str(view_file), "--input", str(export)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert sorted(r["id"] for r in rows) == ["a", "b"]
    assert {r["id"]: r["active"] for r in rows} == {"a": "true", "b": ""}


def test_cli_writes_parquet(export: Path, tmp_path: Path) -> None:
    view_file = tmp_path / "view.json"
    view_file.write_bytes(orjson.dumps(VIEW))
    out = tmp_path / "v.parquet"
    result = CliRunner().invoke(app, ["run", str(view_file), "--input", str(export),
                                      "--format", "parquet", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}')").fetchall() == [(2,)]


def test_cli_rejects_invalid_views_without_a_traceback(export: Path, tmp_path: Path) -> None:
    view_file = tmp_path / "bad.json"
    view_file.write_bytes(orjson.dumps({**VIEW, "select": [{"column": [
        {"name": "x", "path": "name.resolve()"}]}]}))  # fmt: skip
    result = CliRunner().invoke(app, ["run", str(view_file), "--input", str(export)])
    assert result.exit_code == 2
    assert "select[0].column[0].path: unsupported FHIRPath function resolve()" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(app, ["run", str(view_file), "--input", str(export),
                                      "--engine", "spark"])  # fmt: skip
    assert result.exit_code == 2
    not_json = tmp_path / "nope.json"
    not_json.write_text("{")
    assert CliRunner().invoke(app, ["run", str(not_json), "--input", str(export)]).exit_code == 2


def test_mixed_files_with_conflicting_shapes_are_read_leniently(tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.ndjson"
    lines = [*RESOURCES, {"resourceType": "Basic", "id": "x", "gender": {"odd": 1},
                          "name": "not-a-list", "active": "maybe"}]  # fmt: skip
    mixed.write_bytes(b"\n".join(orjson.dumps(r) for r in lines))
    got = run_view_files(VIEW, [mixed])
    assert sorted(got, key=str) == EXPECTED  # type: ignore[arg-type]


@pytest.mark.spark
def test_spark_reads_files_and_writes_every_format(export: Path, tmp_path: Path,
                                                   spark_session: Any) -> None:  # fmt: skip
    got = run_view_files(VIEW, [export], engine="spark")
    assert sorted(got, key=str) == EXPECTED  # type: ignore[arg-type]
    for fmt, reader in (("csv", "read_csv"), ("parquet", "read_parquet"),
                        ("ndjson", "read_json")):  # fmt: skip
        out = tmp_path / f"spark-{fmt}"
        assert run_view_files(VIEW, [export], engine="spark", out=out, fmt=fmt) == 2
        rows = duckdb.sql(f"SELECT id, gender, active, n FROM {reader}('{out}/part-*') "
                          f"ORDER BY id").fetchall()  # fmt: skip
        assert rows == [("a", "female", True, 1), ("b", "male", None, 0)], fmt


@pytest.mark.spark
def test_cli_on_spark(export: Path, tmp_path: Path, spark_session: Any) -> None:
    view_file = tmp_path / "view.json"
    view_file.write_bytes(orjson.dumps(VIEW))
    result = CliRunner().invoke(app, ["run", str(view_file), "--input", str(export),
                                      "--engine", "spark"])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {r["id"]: r["active"] for r in rows} == {"a": "true", "b": ""}
    out = tmp_path / "rows"
    result = CliRunner().invoke(app, ["run", str(view_file), "--input", str(export),
                                      "--engine", "spark", "--format", "ndjson",
                                      "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [orjson.loads(x) for f in sorted(out.glob("part-*"))
             for x in f.read_bytes().splitlines()]  # fmt: skip
    assert sorted(lines, key=str) == EXPECTED
