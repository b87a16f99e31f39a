"""Bulk NDJSON import: streaming, bounded memory, resumable, with a report of rejected lines.

Lines are parsed, validated, indexed and turned into database-ready rows in worker processes
(``staging``: the CPU-heavy part, one worker per core), while this process inserts each chunk
in one transaction (``loading``: one ``executemany`` / ``COPY`` per table). Each transaction
also records the last committed line of its file (``import_progress``), so an import that
crashed resumes after that line and stores nothing twice. A line without an ``id`` gets one
derived from the file's fingerprint and line number, so a re-run gives it the same id. A chunk
holding a resource that exists already (a re-import, an update) fails on the primary key and is
written again resource by resource (``put_many``), which versions it."""

from __future__ import annotations

import gc
import gzip
import hashlib
import multiprocessing
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast

import orjson
import psycopg
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from kangqiao.fhir.bulk import deferred
from kangqiao.fhir.bulk.loading import write_staged
from kangqiao.fhir.bulk.prepare import prepare_lines, resource_of
from kangqiao.fhir.bulk.staging import Staged, stage_lines, warm_up
from kangqiao.fhir.store import schema
from kangqiao.fhir.store.records import utcnow
from kangqiao.fhir.store.store import FhirStore, Prepared, UnitOfWork
from kangqiao.security.gate import Access, TrustedGate

P = schema.import_progress
# SQLAlchemy's for statements it runs, the drivers' own for the rows inserted on their cursors
INTEGRITY_ERRORS = (IntegrityError, sqlite3.IntegrityError, psycopg.IntegrityError)


@dataclass(frozen=True, slots=True)
class Rejected:
    file: str
    line: int
    reason: str


@dataclass
class ImportReport:
    job: str
    accepted: int = 0
    skipped: int = 0  # lines already committed by an earlier run of the same job
    rejected: list[Rejected] = field(default_factory=list)
    seconds: float = 0.0
    index_seconds: float = 0.0  # of ``seconds``: building the indexes a load deferred
    indexing: bool = False  # building them now (for progress displays)

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0


Progress = Callable[[ImportReport], None]


def ndjson_files(paths: Sequence[Path]) -> list[Path]:
    """Files given, and ``*.ndjson`` / ``*.ndjson.gz`` files inside directories, sorted."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.is_file()
                              and p.name.endswith((".ndjson", ".ndjson.gz"))))
        elif path.is_file():
            out.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    return out


def fingerprint(path: Path) -> str:
    """Size plus a hash of the first and last 64 KiB: cheap, and changes when the file does."""
    size = path.stat().st_size
    digest = hashlib.blake2b(str(size).encode(), digest_size=16)
    with path.open("rb") as f:
        digest.update(f.read(65536))
        if size > 65536:
            f.seek(max(65536, size - 65536))
            digest.update(f.read(65536))
    return digest.hexdigest()


def _open(path: Path) -> IO[bytes]:
    if path.name.endswith(".gz"):
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def _chunks(path: Path, start_after: int, size: int) -> Iterator[tuple[int, list[bytes]]]:
    """(first line number, lines) chunks of the file, skipping lines <= ``start_after``."""
    batch: list[bytes] = []
    first = 0
    with _open(path) as f:
        for number, line in enumerate(f, start=1):
            if number <= start_after:
                continue
            if not batch:
                first = number
            batch.append(line)
            if len(batch) >= size:
                yield first, batch
                batch = []
    if batch:
        yield first, batch


def import_ndjson(store: FhirStore, access: Access, paths: Sequence[Path], *,
                  job: str | None = None, restart: bool = False, batch_size: int = 2000,
                  workers: int | None = None, progress: Progress | None = None,
                  defer_indexes: bool | None = False) -> ImportReport:
    """``defer_indexes``: into an empty store, build the search indexes once at the end
    (``deferred``); None decides by the input's size."""
    files = ndjson_files(paths)
    prints = {str(f.resolve()): fingerprint(f) for f in files}
    job = job or hashlib.blake2b(orjson.dumps(sorted(prints.items())),
                                 digest_size=8).hexdigest()
    report = ImportReport(job)
    started = time.perf_counter()
    done = {} if restart else _committed(store, job, prints)
    workers = workers if workers is not None else default_workers()
    dialect = store.engine.dialect.name
    clock = _Clock()

    def tasks() -> Iterator[tuple[str, tuple[str, int, list[bytes], str]]]:
        for path in files:
            key = str(path.resolve())
            skip = done.get(key, 0)
            report.skipped += skip
            seed = prints[key]
            yield from ((key, (seed, first, lines, dialect)) for first, lines
                        in _chunks(path, skip, batch_size))

    if defer_indexes is None:
        defer_indexes = sum(f.stat().st_size for f in files) >= deferred.MIN_BYTES
    defer_indexes = defer_indexes and not done and deferred.store_is_empty(store.engine)
    if defer_indexes:
        deferred.drop(store.engine)
    try:
        # one stream over all files, so that the workers run ahead across a file's end
        with _Pool(workers) as pool:
            for (key, task), staged in pool.map(_stage, tasks()):
                _commit_batch(store, access, job, key, task, staged, report, clock)
                report.seconds = time.perf_counter() - started
                if progress:
                    progress(report)
    finally:
        if defer_indexes:
            report.indexing = True
            if progress:
                progress(report)
            began = time.perf_counter()
            deferred.ensure(store.engine)
            report.index_seconds = time.perf_counter() - began
            report.indexing = False
    report.seconds = time.perf_counter() - started
    return report


def _stage(item: tuple[str, tuple[str, int, list[bytes], str]]) -> Staged:
    return stage_lines(item[1])


def default_workers() -> int:
    """One worker per core: the writer's share is small (it inserts pre-built rows), and on
    PostgreSQL the server does much of the writing in its own process anyway."""
    return max(1, os.cpu_count() or 2)


def _committed(store: FhirStore, job: str, prints: dict[str, str]) -> dict[str, int]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(P.c.file, P.c.fingerprint, P.c.committed_line)
                            .where(P.c.job == job)).all()
    # a file changed since the checkpoint starts over (its lines may mean something else)
    return {r.file: r.committed_line for r in rows if prints.get(r.file) == r.fingerprint}


def _commit_batch(store: FhirStore, access: Access, job: str, file: str,
                  task: tuple[str, int, list[bytes], str], staged: Staged,
                  report: ImportReport, clock: _Clock) -> None:
    seed, first, lines, _ = task
    bad = [Rejected(file, line, reason) for line, reason in staged.rejected]
    fast = staged.fast
    for attempt in range(3):
        try:
            with store.write(access) as uow:
                if fast:
                    # no lookup first: the primary key of ``resource`` refuses an id that
                    # exists (a re-import, or a concurrent writer), and the retry takes the
                    # per-resource path, which versions it
                    _created(uow, access, seed, first, lines, staged)
                    write_staged(uow, staged, clock.next())
                else:
                    results = prepare_lines((seed, first, lines))
                    uow.put_many([r.outcome for r in results
                                  if isinstance(r.outcome, Prepared)])
                    uow.flush()
                _checkpoint(uow.conn, job, file, seed, staged.last, len(staged.keys), len(bad))
            break
        except INTEGRITY_ERRORS:
            # twice on the per-resource path: a concurrent writer keeps creating these ids,
            # or something else is wrong: give up loudly
            if attempt == 2 or (attempt == 1 and not staged.fast):
                raise
            fast = False
    report.accepted += len(staged.keys)
    report.rejected.extend(bad)


def _created(uow: UnitOfWork, access: Access, seed: str, first: int, lines: list[bytes],
             staged: Staged) -> None:
    """The gate's check of each created resource, and the unit of work's record of them
    (the audit trail); both need the resource, which the trusted gate of the CLI does not."""
    if isinstance(uow.gate, TrustedGate) and not uow.watches_writes:
        return
    created = [(t, i, resource_of(seed, line, lines[line - first]))
               for (t, i), line in zip(staged.keys, staged.lines, strict=True)]
    for resource_type, _, resource in created:
        uow.gate.check_write(access, "create", resource_type, resource, None)
    uow.created_in_bulk(created)


class _Clock:
    """The timestamp of each batch: the commit's time, never twice the same."""

    def __init__(self) -> None:
        self.last: datetime | None = None

    def next(self) -> datetime:
        now = utcnow()
        if self.last is not None and now <= self.last:
            now = self.last + timedelta(microseconds=1)
        self.last = now
        return now


def _checkpoint(conn: Any, job: str, file: str, seed: str, line: int, accepted: int,
                rejected: int) -> None:
    row = conn.execute(select(P.c.accepted, P.c.rejected).where(
        P.c.job == job, P.c.file == file)).first()
    values = {"fingerprint": seed, "committed_line": line, "updated_at": utcnow()}
    if row is None:
        conn.execute(P.insert().values(job=job, file=file, accepted=accepted,
                                       rejected=rejected, **values))
    else:
        conn.execute(P.update().where(P.c.job == job, P.c.file == file).values(
            accepted=row.accepted + accepted, rejected=row.rejected + rejected, **values))


def _context() -> Any:
    """Fork when this process is single-threaded (the CLI): the workers then start with the
    modules and definitions this process has loaded (a spawned worker re-imports and re-reads
    them: measured ~1.7 s of CPU each). A thread could hold a lock at the fork (the server runs
    imports in its thread pool, with ``workers=0``), so a threaded caller spawns."""
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        warm_up()
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _worker_started() -> None:
    # The cyclic collector runs once per chunk (``_in_worker``) instead of every 700
    # allocations: a chunk's parsed resources and rows live until it is returned, so the
    # frequent collections found nothing to free (measured ~20 % of a worker's CPU).
    gc.disable()


def _in_worker(fn: Callable[[Any], Any], item: Any) -> Any:
    try:
        return fn(item)
    finally:
        gc.collect()


class _Pool:
    """Ordered map over worker processes with a bounded number of chunks in flight, so
    memory stays bounded however large the input (``Pool.imap`` reads its input eagerly)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool: Any = None

    def __enter__(self) -> _Pool:
        if self.workers > 0:
            context = _context()
            # What exists now (the definitions above all) stays out of the collections of the
            # workers, which share it when forked (a collection writes to each object's
            # header), and of this process while it imports.
            gc.freeze()
            self.pool = context.Pool(self.workers, initializer=_worker_started)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            gc.unfreeze()

    def map(self, fn: Callable[[Any], Any], items: Iterator[Any]) -> Iterator[tuple[Any, Any]]:
        """(item, fn(item)) in input order."""
        if self.pool is None:
            yield from ((item, fn(item)) for item in items)
            return
        window: deque[tuple[Any, Any]] = deque()
        for item in items:
            window.append((item, self.pool.apply_async(_in_worker, (fn, item))))
            if len(window) >= 2 * self.workers:
                item, result = window.popleft()
                yield item, result.get()
        while window:
            item, result = window.popleft()
            yield item, result.get()
