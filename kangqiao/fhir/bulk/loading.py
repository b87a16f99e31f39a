"""Writer side of bulk import: insert a staged chunk (``staging.Staged``) as new resources.

Rows arrive ready for the database, so this is one ``executemany`` (SQLite) or one ``COPY``
(PostgreSQL) per table and chunk, with the transaction's timestamp put in place of the
worker's sentinel. Every row the ordinary write path stores for a created resource is stored
here too: the resource (version 1, ``meta`` stamped), its history row (method ``PUT``, as
``put_many`` writes), its ``create`` event in the outbox, and its search-index rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kangqiao.fhir.bulk.staging import COPY_COLUMNS, TS_SENTINEL, TS_TOKEN, Staged, sql_datetime
from kangqiao.fhir.store import schema
from kangqiao.fhir.store.db import is_sqlite
from kangqiao.fhir.store.records import instant
from kangqiao.fhir.store.store import UnitOfWork

_TABLES = {"resource": "resource", "history": "resource_history", "outbox": "outbox",
           **{kind: table.name for kind, table in schema.INDEX_TABLES.items()}}


def write_staged(uow: UnitOfWork, staged: Staged, now: datetime) -> None:
    """Insert the chunk's rows. The ``resource`` rows go first, so that an id that exists
    already fails the batch (an integrity error) before any other row is written."""
    uow.flush()
    if not staged.keys:
        return
    cursor = uow.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if is_sqlite(uow.conn):
            _sqlite(cursor, staged, now)
        else:
            _postgresql(cursor, staged, now)
    finally:
        cursor.close()


def _sqlite(cursor: Any, staged: Staged, now: datetime) -> None:
    # The timestamp goes into the statement text (one statement per chunk): rows carry only
    # what differs per resource, and SQLite's replace() stamps the JSON in C.
    ts = sql_datetime(now)
    stamp = f"replace(?, '{TS_SENTINEL}', '\"lastUpdated\":\"{instant(now)}\"')"
    resources = staged.rows["resource"]
    cursor.executemany(
        "INSERT INTO resource (resource_type, id, version_id, last_updated, deleted, content) "
        f"VALUES (?, ?, 1, '{ts}', 0, {stamp})", resources)
    cursor.executemany(
        "INSERT INTO resource_history (resource_type, id, version_id, last_updated, method, "
        f"deleted, content) VALUES (?, ?, 1, '{ts}', 'PUT', 0, {stamp})", resources)
    cursor.executemany(
        "INSERT INTO outbox (resource_type, resource_id, version_id, action, occurred_at) "
        f"VALUES (?, ?, 1, 'create', '{ts}')", staged.keys)
    for kind, rows in staged.rows.items():
        if kind in schema.INDEX_TABLES:
            columns = schema.INDEX_COLUMNS[kind]
            cursor.executemany(f"INSERT INTO {_TABLES[kind]} ({', '.join(columns)}) VALUES "
                               f"({', '.join('?' for _ in columns)})", rows)


def _postgresql(cursor: Any, staged: Staged, now: datetime) -> None:
    ts = sql_datetime(now).encode()
    token = TS_TOKEN.encode()
    stamped = f'"lastUpdated":"{instant(now)}"'.encode()
    resources = (staged.rows["resource"].replace(token, b"\t" + ts + b"\t")
                 .replace(TS_SENTINEL.encode(), stamped))
    data = {
        "resource": resources,
        # history rows: the same columns plus the method (no raw newline occurs in a row)
        "history": resources.replace(b"\n", b"\tPUT\n"),
        "outbox": staged.rows["outbox"].replace(token[:-1] + b"\n", b"\t" + ts + b"\n"),
    }
    data.update((kind, rows) for kind, rows in staged.rows.items()
                if kind in schema.INDEX_TABLES)
    for key, payload in data.items():
        columns = ", ".join(COPY_COLUMNS[key])
        with cursor.copy(f"COPY {_TABLES[key]} ({columns}) FROM STDIN") as copy:
            copy.write(payload)
