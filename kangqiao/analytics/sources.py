"""The relations views read: resources from NDJSON (parsed by DuckDB's JSON reader) or
from typed Parquet (:mod:`kangqiao.analytics.parquet`), in either of the two shapes the
compiled SQL expects: one STRUCT column ``resource`` holding exactly the elements a view
reads (struct mode), or one JSON column ``resource`` (whole documents)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kangqiao.analytics.dialects import sql_str
from kangqiao.fhir.definitions import resource_types

PARQUET_SUFFIX = ".parquet"


def is_parquet(path: str | Path) -> bool:
    return str(path).endswith(PARQUET_SUFFIX)


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def resource_type_of(path: str | Path) -> str | None:
    """``Observation.ndjson``, ``Observation_2.ndjson``, ``Observation-0001.ndjson.gz``,
    ``Observation.parquet``; None when the name is not an R4 resource type (``Labs.ndjson``,
    ``export.ndjson``: any type may be inside, so every view reads it)."""
    stem = Path(path).name.split(".", 1)[0]
    for sep in ("_", "-"):
        stem = stem.split(sep, 1)[0]
    try:
        known = stem in resource_types()
    except OSError:  # no R4 definitions here (as schema.py allows): trust the capital
        known = stem[:1].isupper()
    return stem if known else None


def duck_type(structure: object) -> str:
    """A ``json_transform`` structure as a DuckDB type name."""
    if isinstance(structure, list):
        return duck_type(structure[0]) + "[]"
    if isinstance(structure, dict):
        fields = ", ".join(f"{ident(k)} {duck_type(v)}" for k, v in structure.items())
        return f"STRUCT({fields})"
    return str(structure)


def _split(files: Sequence[str]) -> tuple[list[str], list[str]]:
    return [f for f in files if not is_parquet(f)], [f for f in files if is_parquet(f)]


def struct_source(files: Sequence[str], structure: dict[str, object]) -> str:
    """A relation with one STRUCT column ``resource`` of ``structure`` over NDJSON and
    Parquet ``files``: NDJSON is parsed straight into the structure (only those elements
    are kept), Parquet gives only the columns needed."""
    ndjson, parquet = _split(files)
    parts = [_parquet_struct(f, structure) for f in parquet]
    if ndjson or not parts:
        listed = ", ".join(sql_str(f) for f in ndjson)
        cols = ", ".join(f"{sql_str(k)}: {sql_str(duck_type(v))}" for k, v in structure.items())
        parts.insert(0, f"SELECT _r AS resource FROM read_json([{listed}], "
                        f"format = 'newline_delimited', columns = {{{cols}}}, "
                        f"ignore_errors = true) AS _r")  # fmt: skip
    return "(" + " UNION ALL ".join(parts) + ")"


def json_source(files: Sequence[str]) -> str:
    """A relation with one JSON column ``resource`` over NDJSON and Parquet ``files``
    (Parquet: the documents rebuilt without the elements they did not have)."""
    ndjson, parquet = _split(files)
    parts = [f"SELECT json_strip_nulls(to_json(_p)) AS resource "
             f"FROM read_parquet({sql_str(f)}) AS _p" for f in parquet]  # fmt: skip
    if ndjson or not parts:
        listed = ", ".join(sql_str(f) for f in ndjson)
        parts.insert(0, f"SELECT json AS resource FROM read_ndjson_objects([{listed}])")
    return "(" + " UNION ALL ".join(parts) + ")"


# --- Parquet ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def _schema(path: str, _mtime: float, _size: int) -> tuple[tuple[str, Any], ...]:
    import duckdb

    con = duckdb.connect()
    try:
        rel = con.sql(f"SELECT * FROM read_parquet({sql_str(path)})")
        return tuple(zip(rel.columns, rel.types, strict=True))
    finally:
        con.close()


def parquet_schema(path: str) -> dict[str, Any]:
    """The file's top-level columns and their DuckDB types (its footer, read once)."""
    st = Path(path).stat()
    return dict(_schema(path, st.st_mtime, st.st_size))


def _has_json(structure: object) -> bool:
    if isinstance(structure, list):
        return _has_json(structure[0])
    if isinstance(structure, dict):
        return any(map(_has_json, structure.values()))
    return structure == "JSON"


def _project(need: object, have: Any, expr: str, depth: int = 0) -> str:
    """``expr``, of the file's type ``have`` (None: the file has no such element), as the
    type ``need``. DuckDB casts a STRUCT to another by field name (missing fields NULL,
    others dropped) and lists item by item; a JSON leaf needs a walk to drop the NULLs of
    the elements the document did not have, so that it reads as the JSON reader gives it."""
    if have is None:
        return f"CAST(NULL AS {duck_type(need)})"
    if str(have) == "JSON" and isinstance(need, str) and need != "JSON":
        # mixed shapes kept as JSON by the conversion: a scalar is read as its text
        return f"TRY_CAST(json_extract_string({expr}, '$') AS {need})"
    if str(have) == "JSON":  # TRY: a document of another shape reads as absent
        return f"TRY_CAST({expr} AS {duck_type(need)})"
    if not _has_json(need):
        return f"CAST({expr} AS {duck_type(need)})"
    if need == "JSON":
        return f"json_strip_nulls(to_json({expr}))"
    if isinstance(need, list) and have.id == "list":
        x = f"_x{depth}"
        item = _project(need[0], have.children[0][1], x, depth + 1)
        return f"list_transform({expr}, lambda {x}: {item})"
    if isinstance(need, dict) and have.id == "struct":
        fields = dict(have.children)
        packed = ", ".join(
            f"{ident(k)} := {_project(v, fields.get(k), f'{expr}.{ident(k)}', depth)}"
            for k, v in need.items())  # fmt: skip
        return f"CASE WHEN {expr} IS NULL THEN NULL ELSE struct_pack({packed}) END"
    return f"CAST(NULL AS {duck_type(need)})"  # a list where the file has one value, or the reverse


def _parquet_struct(path: str, structure: dict[str, object]) -> str:
    have = parquet_schema(path)
    packed = ", ".join(f"{ident(k)} := {_project(v, have.get(k), ident(k))}"
                       for k, v in structure.items())  # fmt: skip
    return f"SELECT struct_pack({packed}) AS resource FROM read_parquet({sql_str(path)})"
