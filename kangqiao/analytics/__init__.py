"""Population analytics: HL7 SQL-on-FHIR v2 views compiled to DuckDB or Spark SQL.

Public interface::

    run_view(view, resources, engine="duckdb") -> list[dict]
    run_view_files(view, paths, engine="duckdb", out=None, fmt="csv") -> list[dict] | int
    compile_view(view) -> CompiledView   # the SQL, for engines and indicator queries

Views are validated (:func:`kangqiao.analytics.viewdef.parse_view`) before any data
is read; invalid ones raise :class:`ViewDefinitionError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from kangqiao.analytics.fhirpath_sql import NeedJson
from kangqiao.analytics.sources import PARQUET_SUFFIX, json_source, resource_type_of
from kangqiao.analytics.viewdef import View, ViewDefinitionError, parse_view
from kangqiao.analytics.viewsql import OutColumn, ViewCompiler

__all__ = [
    "ENGINES", "FORMATS",
    "CompiledView", "ViewDefinitionError", "ViewEvaluationError", "compile_view",
    "run_view", "run_view_files",
]  # fmt: skip

ENGINES = ("duckdb", "spark")
FORMATS = ("csv", "parquet", "ndjson")
INPUT_SUFFIXES = (".ndjson", ".ndjson.gz", ".jsonl", ".json", PARQUET_SUFFIX)


class ViewEvaluationError(ViewDefinitionError):
    """The view is valid but the data breaks it (several values in a single column)."""


@dataclass(frozen=True)
class CompiledView:
    view: View
    columns: list[OutColumn]
    _compiler: ViewCompiler

    def sql(self, source: str) -> str:
        """The view as one query over ``source``, a relation with a JSON column ``resource``."""
        return self._compiler.sql(source)

    def sql_files(self, files: Sequence[str]) -> str:
        """The view as one query reading NDJSON or Parquet ``files`` directly (the fast path)."""
        return self._compiler.sql(json_source(files), list(files))

    def structure(self) -> dict[str, object] | None:
        """The elements the view reads (DuckDB's JSON reader columns), or None when it
        reads whole JSON documents."""
        return self._compiler.structure()

    def sql_parsed(self, source: str) -> str:
        """The view over ``source``, whose ``resource`` column is a STRUCT holding at least
        :meth:`structure` (documents parsed once for several views, see
        :func:`kangqiao.analytics.sources.struct_source`)."""
        return self._compiler.sql(source, parsed=True)


def compile_view(view: dict[str, Any] | View, mode: str = "auto") -> CompiledView:
    """Validate and compile a view. ``mode``: ``struct`` parses each resource once into
    typed structs of the elements the view reads; ``json`` evaluates JSONPath on the raw
    document; ``auto`` (default) uses struct mode when the view allows it."""
    parsed = view if isinstance(view, View) else parse_view(view)
    if mode not in ("auto", "struct", "json"):
        raise ValueError(f"unknown mode {mode!r}")
    compiler = ViewCompiler(parsed, struct=mode != "json")
    try:
        compiler.sql("_probe")  # compiles every expression: errors surface before reading data
    except NeedJson:
        if mode == "struct":
            raise
        compiler = ViewCompiler(parsed, struct=False)
        compiler.sql("_probe")
    return CompiledView(parsed, compiler.output_columns(), compiler)


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise ViewDefinitionError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")


def _connect() -> Any:
    import duckdb

    return duckdb.connect()


def _execute(con: Any, sql: str) -> Any:
    import duckdb

    try:
        return con.execute(sql)
    except duckdb.InvalidInputException as exc:
        message = str(exc)
        if "multiple values found" in message or "expected a single value" in message:
            raise ViewEvaluationError(message.split("Error: ", 1)[-1]) from None
        raise


def _to_python(rows: list[tuple[Any, ...]], columns: list[OutColumn]) -> list[dict[str, Any]]:
    json_cols = [i for i, c in enumerate(columns) if c.kind == "json"]
    names = [c.name for c in columns]
    out: list[dict[str, Any]] = []
    for row in rows:
        values = list(row)
        for i in json_cols:
            v = values[i]
            if v is not None:
                values[i] = [orjson.loads(x) for x in v] if columns[i].collection else (
                    orjson.loads(v))  # fmt: skip
        out.append(dict(zip(names, values, strict=True)))
    return out


def run_view(
    view: dict[str, Any],
    resources: Iterable[dict[str, Any]],
    engine: str = "duckdb",
    *,
    mode: str = "auto",
) -> list[dict[str, Any]]:
    """Run a ViewDefinition over resources held in memory; rows as plain dicts.

    ``mode`` selects the compilation strategy (see :func:`compile_view`); results are
    the same, it exists for tests and diagnosis."""
    compiled = compile_view(view, mode)
    _check_engine(engine)
    docs = [orjson.dumps(r).decode() for r in resources]
    if engine == "spark":
        from kangqiao.analytics import spark

        found, columns = spark.run_docs(compiled.view, docs)
        return _to_python(found, columns)
    con = _connect()
    try:
        con.execute("CREATE TEMP TABLE _src AS SELECT CAST(unnest($1::VARCHAR[]) AS JSON) "
                    "AS resource", [docs])  # fmt: skip
        rows = _execute(con, compiled.sql("_src")).fetchall()
    finally:
        con.close()
    return _to_python(rows, compiled.columns)


def _input_files(paths: Sequence[str | Path]) -> list[str]:
    files: list[str] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.is_file() and (
                f.name.endswith(INPUT_SUFFIXES)))  # fmt: skip
            files += found
        elif p.exists():
            files.append(str(p))
        else:
            raise FileNotFoundError(f"input not found: {p}")
    return files


def run_view_files(
    view: dict[str, Any],
    paths: Sequence[str | Path],
    engine: str = "duckdb",
    out: str | Path | None = None,
    fmt: str = "csv",
) -> list[dict[str, Any]] | int:
    """Run a view over NDJSON files or directories of them, read directly by the engine.

    Without ``out`` the rows are returned; with it they are written as CSV (with a
    header), Parquet or NDJSON and the row count is returned: by DuckDB's ``COPY`` to
    the file ``out``; by Spark to the folder ``out`` (one part file per partition)."""
    compiled = compile_view(view)
    _check_engine(engine)
    if fmt not in FORMATS:
        raise ViewDefinitionError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    rtype = compiled.view.resource
    if engine == "spark":
        remote_or_mine = [f for f in _spark_inputs(paths)
                          if "://" in f or resource_type_of(f) in (rtype, None)]  # fmt: skip
        return _run_files_spark(compiled, remote_or_mine, out, fmt)
    files = [f for f in _input_files(paths) if resource_type_of(f) in (rtype, None)]
    con = _connect()
    try:
        if not files:
            return [] if out is None else _write_empty(con, compiled, out, fmt)
        query = compiled.sql_files(files)
        if out is None:
            return _to_python(_execute(con, query).fetchall(), compiled.columns)
        return _copy(con, query, out, fmt)
    finally:
        con.close()


def _run_files_spark(compiled: CompiledView, files: list[str], out: str | Path | None,
                     fmt: str) -> list[dict[str, Any]] | int:  # fmt: skip
    from kangqiao.analytics import spark

    if not files and out is None:
        return []
    if not files:
        spark.compile_spark(compiled.view)
        raise ViewDefinitionError("no input files to read")
    if out is None:
        found, columns = spark.run_files(compiled.view, files)
        return _to_python(found, columns)
    frame, columns = spark.files_frame(compiled.view, files)
    return spark.write(frame, columns, str(out), fmt)


def _spark_inputs(paths: Sequence[str | Path]) -> list[str]:
    """Local paths as for DuckDB; URLs (hdfs://, s3a://, file://) as they are: the
    cluster reads them (a folder, a file or a glob)."""
    remote = [str(p) for p in paths if "://" in str(p)]
    return remote + _input_files([p for p in paths if "://" not in str(p)])


def _copy(con: Any, query: str, out: str | Path, fmt: str) -> int:
    options = {"csv": "FORMAT csv, HEADER", "parquet": "FORMAT parquet",
               "ndjson": "FORMAT json"}[fmt]  # fmt: skip
    target = str(out).replace("'", "''")
    result = _execute(con, f"COPY ({query}) TO '{target}' ({options})").fetchone()
    return int(result[0]) if result else 0


def _write_empty(con: Any, compiled: CompiledView, out: str | Path, fmt: str) -> int:
    cols = ", ".join(f'CAST(NULL AS {c.sql_type}) AS "{c.name}"' for c in compiled.columns)
    return _copy(con, f"SELECT {cols} WHERE FALSE", out, fmt)
