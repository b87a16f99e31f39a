"""FHIR resources as typed Parquet: written once from NDJSON, read by views without parsing.

A view over NDJSON pays for DuckDB's JSON parser on every run (most of a county's cold
indicator build). Here each resource type's NDJSON is converted once into Parquet whose
columns are the resources' top-level elements, typed by DuckDB's inference over *every*
line (nested STRUCTs and LISTs; dates and times kept as text, since FHIR dates are partial
and carry their own offsets). Views then read only the columns they need
(:func:`kangqiao.analytics.sources.struct_source`).

What the conversion does not keep: the spelling of numbers (FHIR ``1.50`` reads back as
``1.5``) and the order of keys. It is an analytics format, not an archive.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from kangqiao.analytics.dialects import sql_str
from kangqiao.analytics.sources import PARQUET_SUFFIX, ident, resource_type_of

# DuckDB's JSON inference turns ISO-looking strings into these; FHIR needs the text back.
_TEMPORAL = {"date", "time", "timestamp", "timestamp with time zone", "timestamp_ns",
             "timestamp_ms", "timestamp_s", "time with time zone", "uuid"}  # fmt: skip


def _text_type(t: Any) -> str:
    """The SQL type ``t`` with every temporal type, at any depth, read as VARCHAR."""
    if t.id == "struct":
        return "STRUCT(" + ", ".join(f"{ident(n)} {_text_type(c)}" for n, c in t.children) + ")"
    if t.id == "list":
        return _text_type(t.children[0][1]) + "[]"
    return "VARCHAR" if t.id in _TEMPORAL else str(t)


def _reader(files: Sequence[str], options: str) -> str:
    listed = ", ".join(sql_str(f) for f in files)
    return f"read_json([{listed}], format = 'newline_delimited', ignore_errors = true, {options})"


def inferred_columns(con: Any, files: Sequence[str]) -> dict[str, str]:
    """Every top-level element found in ``files`` with its type: inferred from all lines
    (a rare element must not be dropped), never as a MAP."""
    rel = con.sql("SELECT * FROM " + _reader(files, "sample_size = -1, "
                  "map_inference_threshold = -1, field_appearance_threshold = 0"))  # fmt: skip
    return {name: _text_type(t) for name, t in zip(rel.columns, rel.types, strict=True)}


def ndjson_to_parquet(files: Iterable[Path], out_dir: Path, *, threads: int | None = None
                      ) -> list[tuple[Path, int]]:  # fmt: skip
    """One Parquet file per resource type (``<Type>.parquet``; files whose name does not
    say the type go together into ``resources.parquet``) in ``out_dir``; returns each file
    with its row count. Lines that are not JSON objects (or have no ``resourceType``) are
    skipped, as the views' NDJSON reader skips them."""
    import duckdb

    groups: dict[str, list[str]] = {}
    for f in files:
        groups.setdefault(resource_type_of(f) or "resources", []).append(str(f))
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[tuple[Path, int]] = []
    con = duckdb.connect()
    try:
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        for name, group in sorted(groups.items()):
            columns = inferred_columns(con, group)
            spec = ", ".join(f"{sql_str(k)}: {sql_str(v)}" for k, v in columns.items())
            # a line that is not a JSON object reads as a row of NULLs: not a resource
            where = '"resourceType" IS NOT NULL' if "resourceType" in columns else "FALSE"
            target = out_dir / f"{name}{PARQUET_SUFFIX}"
            done = con.execute(f"COPY (SELECT * FROM {_reader(group, f'columns = {{{spec}}}')} "
                               f"WHERE {where}) TO {sql_str(str(target))} "
                               f"(FORMAT parquet, COMPRESSION zstd)").fetchone()  # fmt: skip
            written.append((target, int(done[0]) if done else 0))
    finally:
        con.close()
    return written
