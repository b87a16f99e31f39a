"""Bulk Data ``$export`` (FHIR Bulk Data Access IG 2.0): what a kick-off asks for, and the job
that writes it as NDJSON files.

A job reads each requested type in chunks. A chunk first takes the next ids in the export's
scope (type, compartment, ``_since``, the snapshot time) from the primary key, after the last
id done (keyset paging: a type of any size costs one index range scan, and memory stays
bounded by the chunk), then loads those ids through ``UnitOfWork.search`` with the
requester's ``Access``, so the security gate and the ``_typeFilter`` queries apply exactly as
they do to an interactive search. The resources are appended to ``<Type>-<n>.ndjson`` and the
job checkpoints the last id and the file's length. A job that was interrupted truncates its
open file to the checkpointed length and goes on from the last id: nothing is written twice.

Snapshot: ``transactionTime`` is the kick-off time and only versions written up to it are
exported; anything written later is left to the next export with ``_since=transactionTime``.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO, Literal
from urllib.parse import parse_qsl

import orjson
from sqlalchemy import ColumnElement, exists, select, true
from sqlalchemy.exc import OperationalError

from kangqiao.fhir import definitions
from kangqiao.fhir.bulk import export_jobs as jobs
from kangqiao.fhir.outcome import FhirError
from kangqiao.fhir.search.dates import parse_range
from kangqiao.fhir.search.query import build_search
from kangqiao.fhir.store import schema
from kangqiao.fhir.store.records import Stored, instant, utcnow
from kangqiao.fhir.store.store import FhirStore, UnitOfWork

log = logging.getLogger("kangqiao.export")

R = schema.resource
REF = schema.search_reference
Level = Literal["system", "patient", "group"]
Query = list[tuple[str, str]]

OUTPUT_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
KICKOFF_PARAMS = frozenset({"_outputFormat", "_type", "_since", "_typeFilter"})
# Parameters that shape a searchset rather than select resources: meaningless in a filter.
NOT_FILTERS = frozenset({"_count", "_offset", "_sort", "_include", "_revinclude", "_summary",
                         "_elements", "_total", "_contained", "_containedType", "_format",
                         "_pretty"})
CHUNK = 1000  # resources per read transaction and per checkpoint
FILE_MAX = 100_000  # resources per output file, so no single file grows unmanageable
# Writes commit a little after they stamp lastUpdated. Waiting this long after the snapshot
# time before reading lets writes in flight at kick-off commit, so none is missed by both this
# export and the next one with _since=transactionTime.
SETTLE = 1.0
POLL = 5.0  # seconds between looks for queued or abandoned jobs
MAX_RETRIES = 3  # database outages survived by one job before it is failed


@cache
def compartment() -> dict[str, tuple[str, ...]]:
    return definitions.patient_compartment()


@dataclass(frozen=True)
class ExportRequest:
    level: Level
    group_id: str | None
    types: list[str]
    since: datetime | None
    filters: dict[str, list[Query]]

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "group_id": self.group_id, "types": self.types,
                "since": None if self.since is None else self.since.isoformat(),
                "filters": {t: [[list(p) for p in q] for q in qs]
                            for t, qs in self.filters.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportRequest:
        since = data.get("since")
        return cls(data["level"], data.get("group_id"), list(data["types"]),
                   None if since is None else datetime.fromisoformat(since),
                   {t: [[(p[0], p[1]) for p in q] for q in qs]
                    for t, qs in data.get("filters", {}).items()})


def parse_kickoff(level: Level, group_id: str | None, params: list[tuple[str, str]], *,
                  lenient: bool = False) -> ExportRequest:
    """Check the kick-off parameters; every problem is a 400 before any job exists."""
    unknown = sorted({n for n, _ in params} - KICKOFF_PARAMS)
    if unknown and not lenient:
        raise FhirError.of(400, "not-supported", f"$export does not support {', '.join(unknown)}"
                           " (send Prefer: handling=lenient to have them ignored)")
    for name, value in params:
        # a client that forgot to percent-encode '+' sends "application/fhir ndjson"
        if name == "_outputFormat" and value.strip().replace(" ", "+") not in OUTPUT_FORMATS:
            raise FhirError.of(400, "not-supported", f"_outputFormat {value!r} is not supported;"
                               " use application/fhir+ndjson", "_outputFormat")
    types = _types(level, params)
    sinces = [v for n, v in params if n == "_since"]
    since = None
    if sinces:
        parsed = parse_range(sinces[-1].strip()) if len(sinces) == 1 else None
        if parsed is None:
            raise FhirError.of(400, "invalid", f"_since must be one FHIR instant, not {sinces!r}",
                               "_since")
        since = parsed[0]
    filters = _filters(params, types, explicit=any(n == "_type" for n, _ in params))
    return ExportRequest(level, group_id, types, since, filters)


def _types(level: Level, params: list[tuple[str, str]]) -> list[str]:
    known = definitions.resource_types()
    scope = known if level == "system" else frozenset({"Patient", *compartment()})
    asked = [t.strip() for n, v in params if n == "_type" for t in v.split(",") if t.strip()]
    if not asked:
        return sorted(scope)
    unknown = sorted({t for t in asked if t not in known})
    if unknown:
        raise FhirError.of(400, "not-supported", f"_type: unknown resource types {unknown}",
                           "_type")
    outside = sorted({t for t in asked if t not in scope})
    if outside:
        raise FhirError.of(400, "not-supported", f"_type: {outside} are not in the Patient "
                           "compartment, so not part of a Patient or Group export", "_type")
    return list(dict.fromkeys(asked))


def _filters(params: list[tuple[str, str]], types: list[str], *, explicit: bool
             ) -> dict[str, list[Query]]:
    """``_typeFilter=Type?query`` (comma-separated or repeated; the framework has decoded the
    value once, so a comma inside a query arrives as %2C and survives this split). Several
    queries for one type are OR-ed; each is checked by the search engine, strictly."""
    out: dict[str, list[Query]] = {}
    for name, value in params:
        if name != "_typeFilter":
            continue
        for text in value.split(","):
            rtype, mark, query = text.strip().partition("?")
            criteria = parse_qsl(query, keep_blank_values=True)
            if not mark or not criteria:
                raise FhirError.of(400, "invalid", f"_typeFilter {text!r}: expected "
                                   "Type?search-parameters", "_typeFilter")
            if rtype not in types:
                where = "_type" if explicit else "this export"
                raise FhirError.of(400, "invalid", f"_typeFilter {text!r}: {rtype} is not "
                                   f"exported by {where}", "_typeFilter")
            shaping = sorted({n for n, _ in criteria if n.split(":")[0] in NOT_FILTERS})
            if shaping:
                raise FhirError.of(400, "invalid", f"_typeFilter {text!r}: {shaping} select "
                                   "nothing and are not allowed", "_typeFilter")
            build_search(rtype, criteria, strict=True)  # 400 for unknown parameters or values
            out.setdefault(rtype, []).append(criteria)
    return out


# ---- reading ---------------------------------------------------------------------------


def _in_compartment(rtype: str, group_id: str | None) -> ColumnElement[bool]:
    """In the Patient compartment of any patient (Patient level) or of the Group's patient
    members (Group level), by the CompartmentDefinition's parameters, from the reference
    index. Members come from the Group's own index rows, so any size of Group costs nothing."""
    members = None if group_id is None else select(REF.c.target_id).where(
        REF.c.resource_type == "Group", REF.c.resource_id == group_id, REF.c.param == "member",
        REF.c.target_type == "Patient")
    if rtype == "Patient":
        return true() if members is None else R.c.id.in_(members)
    where = [REF.c.resource_type == rtype, REF.c.resource_id == R.c.id,
             REF.c.param.in_(compartment().get(rtype, ())), REF.c.target_type == "Patient"]
    if members is not None:
        where.append(REF.c.target_id.in_(members))
    return exists(select(1).select_from(REF).where(*where))


def next_ids(uow: UnitOfWork, req: ExportRequest, rtype: str, until: datetime,
             after: str | None, limit: int) -> list[str]:
    """The next ``limit`` ids of ``rtype`` in the export's scope after ``after``: keys only,
    from the primary key. The gate's SQL filter applies here too, so chunks stay full."""
    where: list[ColumnElement[bool]] = [R.c.resource_type == rtype, R.c.deleted.is_(False),
                                        R.c.last_updated <= until]
    if req.since is not None:
        where.append(R.c.last_updated > req.since)  # IG: changed *after* _since
    if after is not None:
        where.append(R.c.id > after)
    if req.level != "system":
        where.append(_in_compartment(rtype, req.group_id))
    visible = uow.gate.search_filter(uow.access, rtype)
    if visible is not None:
        where.append(visible)
    stmt = select(R.c.id).where(*where).order_by(R.c.id).limit(limit)
    return list(uow.conn.execute(stmt).scalars())


def load(uow: UnitOfWork, rtype: str, ids: list[str], queries: list[Query] | None,
         until: datetime) -> list[Stored]:
    """``ids`` through the search engine (gate, ``_typeFilter``), in id order. Several
    queries for one type are OR-ed: their matches within this chunk are united."""
    if not ids:
        return []
    # re-stated for the search: on PostgreSQL a version committed since next_ids is newer
    base = [("_id", ",".join(ids)), ("_lastUpdated", f"le{instant(until)}")]
    found: dict[str, Stored] = {}
    for query in queries or [[]]:
        page = uow.search(rtype, [*base, *query], count=len(ids), total="none", strict=True)
        found.update((s.id, s) for s in page.items)
    return [found[i] for i in ids if i in found]


# ---- running a job ---------------------------------------------------------------------


@dataclass
class Progress:
    """A job's checkpoint: the type being exported, its last id done and its open file."""

    index: int = 0  # into ExportRequest.types
    after: str | None = None
    part: int = 1  # number of the type's open output file
    size: int = 0  # bytes of that file holding checkpointed resources
    lines: int = 0  # resources in that file
    exported: int = 0
    retries: int = 0
    outputs: list[dict[str, Any]] = field(default_factory=list)  # {type, file, count}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Progress:
        return cls(**data)


def file_name(rtype: str, part: int) -> str:
    return f"{rtype}-{part}.ndjson"


class _Part:
    """One output file, opened for appending at the checkpointed length: bytes after it were
    written by a run that stopped before its checkpoint, and are written again now."""

    def __init__(self, path: Path, size: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file: BinaryIO = path.open("r+b" if path.exists() else "wb")
        self.file.truncate(size)
        self.file.seek(size)

    def append(self, data: bytes) -> int:
        self.file.write(data)
        self.file.flush()
        os.fsync(self.file.fileno())  # on disk before the checkpoint says it is
        return self.file.tell()

    def close(self) -> None:
        self.file.close()


def run_job(store: FhirStore, export_dir: Path, job: str, owner: str, *,
            should_stop: Callable[[], bool] = lambda: False, chunk: int | None = None,
            file_max: int | None = None) -> str:
    """Run (or resume) a job claimed by ``owner``; returns its status when this call ends
    (``running`` when ``should_stop`` interrupted it: it was handed back for resuming)."""
    chunk, file_max = chunk or CHUNK, file_max or FILE_MAX
    row = jobs.get(store.engine, job)
    if row is None:
        return "missing"
    req = ExportRequest.from_json(row.params)
    access = jobs.access_from_json(row.access)
    until: datetime = row.transaction_time
    progress = Progress.from_json(row.progress)
    folder = export_dir / job
    wait = (until + timedelta(seconds=SETTLE) - utcnow()).total_seconds()
    while wait > 0 and not should_stop():
        time.sleep(min(wait, 0.05))
        wait -= 0.05
    part: _Part | None = None
    beat = time.monotonic()
    try:
        while progress.index < len(req.types):
            rtype = req.types[progress.index]
            if should_stop():
                jobs.release(store.engine, job, owner)
                return "running"
            limit = max(1, min(chunk, file_max - progress.lines))  # files end at file_max
            with store.read(access) as uow:
                ids = next_ids(uow, req, rtype, until, progress.after, limit)
                found = load(uow, rtype, ids, req.filters.get(rtype), until)
            if found:
                if part is None:
                    part = _Part(folder / file_name(rtype, progress.part), progress.size)
                progress.size = part.append(b"".join(orjson.dumps(s.content) + b"\n"
                                                     for s in found))
                progress.lines += len(found)
                progress.exported += len(found)
            if ids:
                progress.after = ids[-1]
            done = len(ids) < limit
            if progress.lines and (done or progress.lines >= file_max):
                if part is None:  # resumed with nothing more to add: drop unrecorded bytes
                    _Part(folder / file_name(rtype, progress.part), progress.size).close()
                else:
                    part.close()
                part = None
                progress.outputs.append({"type": rtype, "count": progress.lines,
                                         "file": file_name(rtype, progress.part)})
                progress.part, progress.size, progress.lines = progress.part + 1, 0, 0
            if done:
                progress.index, progress.after, progress.part = progress.index + 1, None, 1
            # An empty type moved nothing worth a commit (there are ~150 types, most empty);
            # beat at least every few seconds anyway, which is also when a cancel is noticed.
            if ids or time.monotonic() - beat > 2.0:
                if not jobs.checkpoint(store.engine, job, owner, progress.to_json()):
                    return _lost(store, folder, job)
                beat = time.monotonic()
        if not jobs.finish(store.engine, job, owner, "completed", progress.to_json()):
            return _lost(store, folder, job)
        return "completed"
    except OperationalError as exc:  # the database went away: resume later, a few times
        log.warning("export %s interrupted by a database error: %s", job, exc)
        progress.retries += 1
        if progress.retries <= MAX_RETRIES:
            _quietly(lambda: jobs.release(store.engine, job, owner, progress.to_json()))
            return "running"
        return _fail(store, folder, job, owner, progress, exc)
    except Exception as exc:
        log.exception("export %s failed", job)
        return _fail(store, folder, job, owner, progress, exc)
    finally:
        if part is not None:
            part.close()


def _fail(store: FhirStore, folder: Path, job: str, owner: str, progress: Progress,
          exc: Exception) -> str:
    _quietly(lambda: jobs.finish(store.engine, job, owner, "failed", progress.to_json(),
                                 f"{type(exc).__name__}: {exc}"))
    shutil.rmtree(folder, ignore_errors=True)
    return "failed"


def _lost(store: FhirStore, folder: Path, job: str) -> str:
    """The checkpoint was refused: the job was cancelled (remove what was written) or another
    process took it over (leave its files to it)."""
    row = jobs.get(store.engine, job)
    if row is None or row.status == "cancelled":
        shutil.rmtree(folder, ignore_errors=True)
        return "cancelled"
    return "taken-over"


def _quietly(action: Callable[[], object]) -> None:
    try:
        action()
    except Exception:
        log.exception("could not record the state of an export job")


class ExportRunner:
    """Runs export jobs one at a time in a daemon thread of the server process (one at a
    time, so exports never crowd interactive requests off the machine). Kick-offs wake it;
    every ``POLL`` seconds it also looks for jobs abandoned by a process that died, and
    resumes them. The jobs themselves live in the database, so nothing is lost on restart."""

    def __init__(self, store: FhirStore, export_dir: Path) -> None:
        self.store = store
        self.export_dir = export_dir
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="kangqiao-export",
                                        daemon=True)
        self._thread.start()

    def kick(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                job = jobs.claim(self.store.engine, self.owner)
                if job is not None:
                    status = run_job(self.store, self.export_dir, job, self.owner,
                                     should_stop=self._stop.is_set)
                    if status != "running":  # else it was handed back: retry after a pause
                        continue
            except Exception:  # keep the runner alive; the job row says what happened
                log.exception("export runner error")
            self._wake.wait(POLL)
            self._wake.clear()
