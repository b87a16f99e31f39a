"""``kangqiao view ...``: run SQL-on-FHIR v2 ViewDefinitions over NDJSON or Parquet
files; convert NDJSON to typed Parquet once (``to-parquet``) so that views need not parse it.

The lead mounts this sub-app in ``kangqiao/cli.py`` (``app.add_typer(view_app, name="view")``).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from kangqiao.analytics import FORMATS, ViewDefinitionError, run_view_files

app = typer.Typer(help="SQL-on-FHIR v2 views (DuckDB or Spark).", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """SQL-on-FHIR v2 views (DuckDB or Spark)."""


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@app.command("run")
def run(
    view_file: Annotated[Path, typer.Argument(metavar="VIEW.json", help="ViewDefinition JSON")],
    inputs: Annotated[list[str], typer.Option("--input", "-i", help="NDJSON or Parquet file, or "
                                              "a directory of them "
                                              "(Spark: also hdfs://, s3a://, file:// URLs)")],
    engine: Annotated[str, typer.Option(help="duckdb | spark")] = "duckdb",
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv | parquet | ndjson")] = "csv",
    out: Annotated[str | None, typer.Option("--out", "-o", help="output file (Spark: a folder "
                                            "of part files, or a URL)")] = None,
) -> None:
    """Run VIEW.json over the --input files; CSV on stdout unless --out is given.
    Spark runs on KANGQIAO_SPARK_MASTER (default local[2])."""
    try:
        view = orjson.loads(view_file.read_bytes())
    except FileNotFoundError:
        _fail(f"view file not found: {view_file}")
    except orjson.JSONDecodeError as exc:
        _fail(f"{view_file} is not valid JSON: {exc}")
    if fmt not in FORMATS:
        _fail(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    try:
        result = run_view_files(view, inputs, engine=engine, out=out, fmt=fmt)
    except ViewDefinitionError as exc:
        _fail(f"invalid view {view_file}: {exc}")
    except FileNotFoundError as exc:
        _fail(str(exc))
    else:
        if isinstance(result, int):
            typer.echo(f"{result} rows written to {out}", err=True)
            return
        if fmt == "ndjson":
            for row in result:
                typer.echo(orjson.dumps(row).decode())
            return
        if fmt == "parquet":
            _fail("parquet output needs --out")
        names = list(result[0] if result else {}) or _columns(view)
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(names)
        for row in result:
            writer.writerow([_cell(row[n]) for n in names])


def _columns(view: Any) -> list[str]:
    from kangqiao.analytics.viewdef import parse_view

    return parse_view(view).column_names


@app.command("to-parquet")
def to_parquet(
    inputs: Annotated[list[str], typer.Option("--input", "-i", help="NDJSON file or directory")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for <Type>.parquet files")],
) -> None:
    """Convert NDJSON resources (a bulk export, a synthetic county) into one typed Parquet
    file per resource type, which views and `kangqiao indicators` read without parsing
    JSON. Numbers keep their value, not their spelling (1.50 reads back as 1.5)."""
    import duckdb

    from kangqiao.analytics.indicators.engine import input_files
    from kangqiao.analytics.parquet import ndjson_to_parquet

    try:
        files = [f for f in input_files(inputs) if not f.name.endswith(".parquet")]
    except FileNotFoundError as exc:
        _fail(str(exc))
    if not files:
        _fail("no NDJSON files among the inputs")
    try:
        written = ndjson_to_parquet(files, out)
    except (duckdb.Error, OSError) as exc:
        _fail(f"could not convert: {exc}")
    for path, rows in written:
        typer.echo(f"{rows:>12,}  {path}")
