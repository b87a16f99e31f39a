"""Database engines for the store: SQLite (WAL, one writer) and PostgreSQL (psycopg 3).

A write transaction on SQLite starts with ``BEGIN IMMEDIATE`` so that read-modify-write of a
resource's version is serialised across threads *and* processes; on PostgreSQL the store locks
rows (``SELECT ... FOR UPDATE``) and uses advisory locks for conditional creates.
"""

from __future__ import annotations

import fcntl
import operator
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Engine,
    Select,
    String,
    Table,
    any_,
    bindparam,
    create_engine,
    event,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.sql.elements import BindParameter

from kangqiao.security import fieldcrypt

WRITE_OPTION = "kangqiao_write"


def json_dumps(value: Any) -> str:
    # Every JSON value bound to the database passes here (and the deserialiser below on the
    # way back): protected fields of resources are encrypted (kangqiao.security.fieldcrypt).
    return fieldcrypt.dumps(value)


def make_engine(url: str, *, echo: bool = False, sqlite_synchronous: str = "FULL") -> Engine:
    """Create the engine for ``url`` with the settings each dialect needs."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database, echo=echo, synchronous=sqlite_synchronous)
    return create_engine(
        url,
        echo=echo,
        json_serializer=json_dumps,
        json_deserializer=fieldcrypt.loads,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        # No JIT: the policy's filters carry branches that never run for a given user, but
        # whose estimated cost (billions) made PostgreSQL JIT-compile queries that execute in
        # a millisecond for seconds (7.4 s for a GP's _include of 20 patients at 200,000
        # residents). The store's queries are short; analytics run on DuckDB.
        # Custom plans only: psycopg prepares a statement run five times, and after five more
        # PostgreSQL may keep a generic plan, made without the values. A search's plan rests
        # on them (which condition drives, how far a walk goes): the generic plan of a lab
        # list took 60 s where the custom one takes 35 ms (20,000 residents, from the 11th
        # run on). Planning each run costs ~1-2 ms.
        connect_args={"options": "-c jit=off -c plan_cache_mode=force_custom_plan"},
    )


def _sqlite_engine(url: str, database: str | None, *, echo: bool, synchronous: str) -> Engine:
    if synchronous not in ("FULL", "NORMAL"):
        raise ValueError(f"sqlite synchronous must be FULL or NORMAL, not {synchronous!r}")
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        echo=echo,
        json_serializer=json_dumps,
        json_deserializer=fieldcrypt.loads,
        connect_args={"check_same_thread": False, "timeout": 30},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # We emit BEGIN ourselves (pysqlite's implicit transactions defer locking).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA cache_size=-65536")
        # Checkpoint (and fsync the database file) every ~40 MB of WAL, not every 4 MB:
        # measured 1.6x faster ingest; a checkpoint is not needed for durability.
        cur.execute("PRAGMA wal_autocheckpoint=10000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows given as dicts (all with the keys of the first)."""
    if rows:
        columns = tuple(rows[0])
        getter = operator.itemgetter(*columns)
        values = [getter(r) for r in rows] if len(columns) > 1 else [
            (r[columns[0]],) for r in rows]
        bulk_insert_tuples(conn, table, columns, values)


def bulk_insert_tuples(conn: Connection, table: Table, columns: tuple[str, ...],
                       rows: Sequence[Sequence[Any]]) -> None:
    """Insert many rows given as tuples in ``columns`` order: ``COPY`` on PostgreSQL
    (psycopg's pipelined executemany costs a protocol round per row: measured 3x slower for
    index rows), ``executemany`` on the DBAPI cursor on SQLite, with the columns' own bind
    processors (the values ``conn.execute(insert, rows)`` would store, at a third of the
    cost)."""
    if not rows:
        return
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    if is_sqlite(conn):
        sql, processed = _sqlite_plan(conn.dialect, table, columns)
        params: Sequence[Sequence[Any]] = rows
        if processed:  # only DateTime / JSON / Boolean columns need converting
            params = [_processed(row, processed) for row in rows]
        cursor.executemany(sql, params)
        cursor.close()
        return
    json_at = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)]
    names = ", ".join(f'"{c}"' for c in columns)
    with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            if json_at:
                row = list(row)
                for i in json_at:
                    if row[i] is not None:
                        row[i] = json_dumps(row[i])
            copy.write_row(row)


def _processed(row: Sequence[Any], processed: list[tuple[int, Any]]) -> list[Any]:
    values = list(row)
    for i, proc in processed:
        if values[i] is not None:
            values[i] = proc(values[i])
    return values


_PLANS: dict[tuple[str, tuple[str, ...]], tuple[str, list[tuple[int, Any]]]] = {}


def _sqlite_plan(dialect: Any, table: Table, columns: tuple[str, ...]
                 ) -> tuple[str, list[tuple[int, Any]]]:
    key = (table.name, columns)
    if key not in _PLANS:
        names = ", ".join(f'"{c}"' for c in columns)
        marks = ", ".join("?" for _ in columns)
        # dialect_impl: the generic DateTime has no bind processor; SQLite's writes
        # 'YYYY-MM-DD HH:MM:SS.ffffff', which range queries compare as text.
        processors = [(i, table.c[c].type.dialect_impl(dialect).bind_processor(dialect))
                      for i, c in enumerate(columns)]
        _PLANS[key] = (f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})',
                       [(i, p) for i, p in processors if p is not None])
    return _PLANS[key]


def is_sqlite(engine_or_conn: Engine | Connection) -> bool:
    return engine_or_conn.dialect.name == "sqlite"


Member = Callable[[ColumnElement[str]], ColumnElement[bool]]


def member_of(conn: Connection, ids: Sequence[str]) -> Member:
    """``column`` is one of ``ids``, as ONE bound parameter (a JSON array read by
    ``json_each`` on SQLite, a text array on PostgreSQL) instead of an ``IN`` list of
    thousands: SQLAlchemy re-renders an expanding ``IN`` on every execution, which cost more
    than the queries themselves. Either way the database drives the lookup from the list."""
    return _member(conn, bindparam(None, _ids_value(conn)(ids), type_=_ids_type(conn)))


def member_of_named(conn: Connection, name: str
                    ) -> tuple[Member, Callable[[Sequence[str]], Any]]:
    """``member_of`` with a named parameter and no value, for a statement built once and
    run with many lists: the condition, and what to pass as ``name`` for a list of ids."""
    return _member(conn, bindparam(name, type_=_ids_type(conn))), _ids_value(conn)


def _ids_type(conn: Connection) -> Any:
    return String() if is_sqlite(conn) else postgresql.ARRAY(String())


def _ids_value(conn: Connection) -> Callable[[Sequence[str]], Any]:
    if is_sqlite(conn):
        return lambda ids: orjson.dumps(list(ids)).decode()
    return list


def _member(conn: Connection, param: BindParameter[Any]) -> Member:
    if is_sqlite(conn):
        values: Select[Any] = select(literal_column("value")).select_from(func.json_each(param))
        return lambda column: column.in_(values.scalar_subquery())
    return lambda column: column == any_(param)


class _SqliteWriterQueue:
    """Writers of one SQLite file queue here before ``BEGIN IMMEDIATE``: threads of this
    process on a lock, processes on an ``flock`` of ``<database>-writer.lock``. Both wake the
    next writer as soon as the lock is released, where SQLite's own busy handler polls with
    sleeps of up to 100 ms (measured: 794 -> 1,062 resources/s with two clients)."""

    def __init__(self, database: str | None) -> None:
        self.thread_lock = threading.Lock()
        self.path = f"{database}-writer.lock" if database and database != ":memory:" else None
        self.fd: int | None = None

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self.thread_lock:
            if self.path is None:
                yield
                return
            if self.fd is None:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self.fd, fcntl.LOCK_UN)


_SQLITE_WRITERS: dict[str, _SqliteWriterQueue] = {}


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One write unit of work: commits on success, rolls back on any exception."""
    queue: AbstractContextManager[None] = nullcontext()
    if is_sqlite(engine):
        key = str(engine.url)
        if key not in _SQLITE_WRITERS:
            _SQLITE_WRITERS[key] = _SqliteWriterQueue(engine.url.database)
        queue = _SQLITE_WRITERS[key].hold()
    with queue, engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A consistent snapshot for reads (one transaction, never writes)."""
    with engine.connect() as conn, conn.begin():
        yield conn
