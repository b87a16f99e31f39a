"""Worker side of bulk import: NDJSON lines -> rows ready for the database.

A worker parses, validates and indexes a chunk of lines (``prepare._prepare``) and then
serialises everything the writer will insert for them as *new* resources (version 1): the
``resource`` / ``resource_history`` / ``outbox`` rows and the search-index rows, in the
database's own input form (tuples of plain values for SQLite ``executemany``, ``COPY`` text for
PostgreSQL). The writer then only moves bytes: it does no JSON, no datetime formatting and no
per-row Python work (measured: unpickling the resources as dicts alone cost the writer ~70 µs
per resource, and SQLAlchemy's bind processors another ~60 µs).

The commit time is not known here, so the stored JSON carries ``TS_SENTINEL`` where
``meta.lastUpdated`` goes, and the ``last_updated`` column ``TS_TOKEN``; the writer replaces
both with the transaction's timestamp (one C-level replace per batch on PostgreSQL, SQL
``replace()`` on SQLite). A line whose JSON does not hold the sentinel exactly once, or any
resource that turns out to exist already, sends its batch down the ordinary per-resource path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kangqiao.fhir import definitions
from kangqiao.fhir.bulk.prepare import prepare_one
from kangqiao.fhir.search.elements import element_table
from kangqiao.fhir.search.params import search_params
from kangqiao.fhir.store import schema
from kangqiao.fhir.store.db import json_dumps
from kangqiao.fhir.store.store import Prepared

TS_SENTINEL = '"lastUpdated":"0000-00-00T00:00:00.000000Z"'
TS_TOKEN = "\t@TS@\t"  # the last_updated column in COPY rows (tabs never occur in values)
_DATE_KIND = "date"


@dataclass(frozen=True, slots=True)
class Staged:
    """One chunk of lines, ready to insert. ``rows`` per table key ("resource", "outbox",
    and the index kinds): a list of tuples (SQLite) or COPY text (PostgreSQL)."""

    first: int
    last: int
    rejected: list[tuple[int, str]]
    keys: list[tuple[str, str]]  # (resource type, id) of the accepted lines, in order
    lines: list[int]  # their line numbers
    rows: dict[str, Any]
    fast: bool  # False: use the per-resource path for this chunk (see module doc)


def warm_up() -> None:
    """Load what every worker reads (definitions, search parameters) before forking them."""
    definitions.preload()
    search_params(None)
    element_table()


def stage_lines(task: tuple[str, int, list[bytes], str]) -> Staged:
    seed, first, lines, dialect = task
    rejected: list[tuple[int, str]] = []
    prepared: list[Prepared] = []
    accepted: list[int] = []
    last = first - 1
    for n, raw in enumerate(lines):
        last = first + n
        if not raw.strip():
            continue
        outcome = prepare_one(seed, last, raw)
        if isinstance(outcome, Prepared):
            prepared.append(outcome)
            accepted.append(last)
        else:
            rejected.append((last, outcome))
    keys = [(p.resource_type, p.id) for p in prepared]
    contents = [json_dumps(_stamped(p.resource)) for p in prepared]
    fast = len(set(keys)) == len(keys) and all(c.count(TS_SENTINEL) == 1 for c in contents)
    rows: dict[str, Any] = {}
    if fast and dialect == "sqlite":
        rows = _sqlite_rows(prepared, contents)
    elif fast:
        # a NUL in a value can only come from a \u0000 escape (JSON allows no raw NUL)
        nul_free = not any(b"\\u0000" in raw for raw in lines)
        rows = _copy_rows(prepared, contents, nul_free)
    return Staged(first, last, rejected, keys, accepted, rows, fast)


def _stamped(resource: dict[str, Any]) -> dict[str, Any]:
    """``records.stamp`` for version 1, with the sentinel for the time."""
    out = dict(resource)
    meta = dict(out.get("meta") or {})
    meta["versionId"] = "1"
    meta["lastUpdated"] = "0000-00-00T00:00:00.000000Z"
    out["meta"] = meta
    return out


def sql_datetime(value: datetime) -> str:
    """The text SQLAlchemy stores for a DateTime on SQLite (and PostgreSQL accepts)."""
    return value.isoformat(" ", timespec="microseconds")


def _sqlite_rows(prepared: list[Prepared], contents: list[str]) -> dict[str, Any]:
    rows: dict[str, Any] = {"resource": [(p.resource_type, p.id, c)
                                         for p, c in zip(prepared, contents, strict=True)]}
    for p in prepared:
        for kind, tuples in p.index.items():
            if kind == _DATE_KIND:
                tuples = [(t, i, param, sql_datetime(low), sql_datetime(high), grp)
                          for t, i, param, low, high, grp in tuples]
            rows.setdefault(kind, []).extend(tuples)
    return rows


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if type(value) is str:
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
                    .replace("\r", "\\r"))
        return value
    if type(value) is float:
        return repr(value)
    if isinstance(value, datetime):
        return sql_datetime(value)
    return str(value)


def _backslashed(text: str) -> str:
    return text.replace("\\", "\\\\") if "\\" in text else text


def _copy_rows(prepared: list[Prepared], contents: list[str], nul_free: bool) -> dict[str, Any]:
    # orjson never writes a raw tab, newline or carriage return: only backslashes need
    # escaping in the JSON column, and TS_TOKEN cannot occur inside a value.
    resource = "".join(f"{p.resource_type}\t{p.id}\t1{TS_TOKEN}f\t{_backslashed(c)}\n"
                       for p, c in zip(prepared, contents, strict=True))
    outbox = "".join(f"{p.resource_type}\t{p.id}\t1\tcreate{TS_TOKEN[:-1]}\n" for p in prepared)
    rows: dict[str, Any] = {"resource": resource.encode(), "outbox": outbox.encode()}
    tuples: dict[str, list[tuple[Any, ...]]] = {}
    for p in prepared:
        for kind, kind_rows in p.index.items():
            tuples.setdefault(kind, []).extend(kind_rows)
    for kind, kind_rows in tuples.items():
        text = _copy_block(kind_rows) if nul_free else None
        if text is None:
            text = "".join("\t".join([_copy_text(v) for v in row]) + "\n" for row in kind_rows)
        rows[kind] = text.encode()
    return rows


def _copy_block(rows: list[tuple[Any, ...]]) -> str | None:
    """COPY text of rows none of whose strings needs escaping (nearly all), or None. Strings
    go in as they are and None as a NUL, and a few C-level scans over the whole block check
    that no value held a tab, newline, carriage return or backslash: ~3x faster than looking
    at each value."""
    text = "\n".join(["\t".join([v if type(v) is str else "\0" if v is None else _copy_text(v)
                                 for v in row]) for row in rows]) + "\n"
    if ("\\" in text or "\r" in text or text.count("\n") != len(rows)
            or text.count("\t") != len(rows) * (len(rows[0]) - 1)):
        return None
    return text.replace("\0", "\\N")


COPY_COLUMNS = {
    "resource": ("resource_type", "id", "version_id", "last_updated", "deleted", "content"),
    "history": ("resource_type", "id", "version_id", "last_updated", "deleted", "content",
                "method"),
    "outbox": ("resource_type", "resource_id", "version_id", "action", "occurred_at"),
    **schema.INDEX_COLUMNS,
}
